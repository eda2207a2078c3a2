"""``octviewer-cli model-info``: a bundle's model card facts, read without loading weights."""

from __future__ import annotations

import argparse
import json
import sys

from octviewer.cli.common import EXIT_OK, EXIT_USAGE, say
from octviewer.errors import OCTViewerError


def cmd_model_info(args: argparse.Namespace) -> int:
    from octviewer.core.model.bundle import file_sha256, read_bundle_config
    from octviewer.core.model.card import model_facts
    from octviewer.resources import default_model_path

    path = args.model or default_model_path()
    if not path.is_file():
        which = "The default model" if args.model is None else "The model file"
        say(
            f"octviewer-cli: {which} was not found at {path}. Give a bundle with --model.",
            sys.stderr,
        )
        return EXIT_USAGE
    try:
        cfg = read_bundle_config(path)
        sha = file_sha256(path)
    except OCTViewerError as e:
        say(f"octviewer-cli: {e}", sys.stderr)
        return EXIT_USAGE
    if args.json:
        d = cfg.to_dict()
        d["sha256"] = sha
        d["file"] = str(path)
        say(json.dumps(d, indent=1, sort_keys=True, default=str))
        return EXIT_OK
    rows = model_facts(cfg, sha, path)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        say(f"{k + ':':<{width + 2}}{v}")
    for title, d in (("Metrics", cfg.metrics), ("Provenance", cfg.provenance)):
        say(f"{title}:" + ("" if d else " none recorded"))
        for k, v in d.items():
            say(f"  {k}: {json.dumps(v, default=str) if isinstance(v, dict | list) else v}")
    return EXIT_OK
