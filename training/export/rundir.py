"""Run directories and the stamp every bundle's provenance carries.

Shared by single runs (:mod:`training.run`) and ensembles (:mod:`training.ensemble.command`): the
run-directory checks, the run's ``train.log``, the code's git commit and the versions block.
"""

from __future__ import annotations

import datetime as _dt
import logging
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from octviewer.errors import TrainingError

if TYPE_CHECKING:
    from training.config import TrainConfig

log = logging.getLogger(__name__)

RUN_MARKERS = ("config.json", "train.log", "last.pt", "split.csv")


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """A single run's directory: refuse a file, a non-run folder and (unless asked) any reuse."""
    run_dir = Path(cfg.run_dir).expanduser()
    has_content = run_dir.is_dir() and any(run_dir.iterdir())
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(
            f"The run directory {run_dir} is a file; choose another --run-dir.", path=run_dir
        )
    if cfg.resume:
        if not has_content:
            raise TrainingError(f"Cannot resume: {run_dir} holds no earlier run.", path=run_dir)
        return run_dir
    if has_content:
        if not cfg.overwrite:
            raise TrainingError(
                f"The run directory {run_dir} already exists and is not empty. Choose a new "
                "--run-dir, add --resume to continue that run, or --overwrite to replace it.",
                path=run_dir,
            )
        if not any((run_dir / m).exists() for m in RUN_MARKERS):
            raise TrainingError(
                f"{run_dir} does not look like an octviewer-train run directory; refusing to "
                "delete it even with --overwrite. Choose another --run-dir.",
                path=run_dir,
            )
        log.warning("Overwriting the earlier run in %s", run_dir)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def prepare_ensemble_run_dir(run_dir: Path, overwrite: bool) -> Path:
    """An ensemble's directory: refuse a non-empty one unless ``overwrite`` (nothing is deleted;
    the ensemble's files replace their namesakes)."""
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise TrainingError(
            f"The run directory {run_dir} already exists and is not empty. Choose a new --run-dir "
            "or add --overwrite.",
            path=run_dir,
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def attach_log(run_dir: Path) -> logging.Handler:
    """Copy INFO and above to ``run_dir/train.log``; the caller removes the handler."""
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def git_commit() -> str | None:
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def runtime_versions() -> dict[str, str]:
    import timm
    import torch

    import octviewer

    return {
        "octviewer": octviewer.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
    }


def provenance_stamp(t_start: float) -> dict[str, Any]:
    """The closing keys of every bundle's provenance: code, date, versions, run time."""
    return {
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": runtime_versions(),
        "run_seconds": round(time.perf_counter() - t_start, 1),
    }
