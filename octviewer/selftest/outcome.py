"""What the self-test found: one :class:`CaseOutcome` per scan, the whole :class:`SelfTestRun`
(its summary line and JSON)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octviewer._version import __version__

log = logging.getLogger("octviewer.selftest")  # one logger name for the whole self-test


@dataclass
class CaseOutcome:
    """What happened to one scan (a sample or a generated DICOM)."""

    name: str
    loaded: bool = False
    analysed: bool = False
    report: Path | None = None
    not_oct_flagged: bool = False  # a non-OCT scan that the engine flagged NOT_OCT
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        log.error("self-test: %s: %s", self.name, message)


@dataclass
class SelfTestRun:
    """Everything the self-test found; ``ok`` when nothing failed."""

    cases: list[CaseOutcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    device: str = "?"
    model: str = "none"
    elapsed_s: float = 0.0
    decoders_checked: bool = False
    torch_info: dict[str, Any] = field(default_factory=dict)
    readers: list[Any] = field(default_factory=list)  # selftest_readers.ReaderOutcome
    int8: str = ""  # what the int8 check found ("" = not run)
    keyring: str = ""  # the platform keyring backend found for archive passwords (never fails)

    def readers_line(self) -> str:
        """One line naming every reader checked (the summary line stays as it was)."""
        good = [r.label for r in self.readers if r.ok]
        bad = [r.label for r in self.readers if not r.ok]
        return (
            f"self-test: readers {len(good)}/{len(self.readers)} open: "
            + ", ".join(good)
            + (f"; FAILED: {', '.join(bad)}" if bad else "")
        )

    @property
    def ok(self) -> bool:
        return not self.failures and all(not c.failures for c in self.cases)

    @property
    def n_scans(self) -> int:
        return sum(c.analysed for c in self.cases)

    @property
    def n_reports(self) -> int:
        return sum(c.report is not None for c in self.cases)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        log.error("self-test: %s", message)

    def summary(self) -> str:
        status = "OK" if self.ok else "FAILED"
        n_fail = len(self.failures) + sum(len(c.failures) for c in self.cases)
        tail = "" if self.ok else f", {n_fail} failure(s)"
        if not self.decoders_checked:
            tail += ", compressed-DICOM decoders NOT checked"
        return (
            f"self-test: {status} {self.n_scans} scans, {self.n_reports} reports, "
            f"device={self.device}, model={self.model}, {self.elapsed_s:.1f} s{tail}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "version": __version__,
            "device": self.device,
            "model": self.model,
            "elapsed_s": round(self.elapsed_s, 3),
            "torch": self.torch_info,
            "failures": self.failures,
            "readers": [dataclasses.asdict(r) for r in self.readers],
            "int8": self.int8 or None,
            "keyring": self.keyring or None,
            "cases": [
                {
                    "name": c.name,
                    "loaded": c.loaded,
                    "analysed": c.analysed,
                    "report": str(c.report) if c.report else None,
                    "failures": c.failures,
                    "notes": c.notes,
                }
                for c in self.cases
            ],
        }
