"""The one step from the argparse layer to the typed configs: a parsed ``Namespace`` becomes a
frozen dataclass, and nothing below the command line sees the ``Namespace``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

C = TypeVar("C")


def config_from(ns: argparse.Namespace, cls: type[C]) -> C:
    """``cls`` built from the parsed options of its field names (lists become tuples)."""
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    typed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**typed)
