"""``python -m training`` = ``octviewer-train``."""

from training.cli import main

raise SystemExit(main())
