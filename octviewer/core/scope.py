"""What a model reads: the scan protocols and regions its bundle says it was trained on, and
the judgement of a scan's stated protocol against them (the ``OUT_OF_SCOPE`` flag).

A bundle states its scope in ``ModelConfig.training_domain``::

    {"scan_patterns": ["line", "volume"], "regions": ["macula"], ...}

with the values of :class:`~octviewer.core.scan.ScanPattern` and
:class:`~octviewer.core.scan.ScanRegion`. A scan whose file *states* a pattern or a region
outside them is not assessed, before any network answer is shown; a scan whose file states
nothing is judged from its pixels instead (:mod:`octviewer.core.anatomy`, the feature
distance). A bundle that states no scope gates nothing here (bundles made before the field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from octviewer.core.scan import ScanPattern, ScanProtocol, ScanRegion

__all__ = ["DEFAULT_MACULAR_SCOPE", "ModelScope"]

PATTERNS_KEY = "scan_patterns"
REGIONS_KEY = "regions"


@dataclass(frozen=True)
class ModelScope:
    """The scan patterns and regions a model reads; empty tuples mean "not stated"."""

    patterns: tuple[ScanPattern, ...] = ()
    regions: tuple[ScanRegion, ...] = ()

    @classmethod
    def from_training_domain(cls, domain: Mapping[str, Any]) -> ModelScope:
        """Read from a bundle's ``training_domain``; unknown names are ignored (a newer
        bundle's pattern this version does not know cannot be matched anyway)."""
        return cls(
            patterns=tuple(_members(ScanPattern, domain.get(PATTERNS_KEY))),
            regions=tuple(_members(ScanRegion, domain.get(REGIONS_KEY))),
        )

    def to_training_domain(self) -> dict[str, list[str]]:
        return {
            PATTERNS_KEY: [p.value for p in self.patterns],
            REGIONS_KEY: [r.value for r in self.regions],
        }

    @property
    def is_stated(self) -> bool:
        return bool(self.patterns or self.regions)

    @property
    def description(self) -> str:
        """Plain words: "macular line and volume scans"; "" when not stated."""
        if not self.is_stated:
            return ""
        regions = " or ".join(_REGION_ADJECTIVE.get(r, r.value) for r in self.regions)
        patterns = _and([p.value for p in self.patterns if p is not ScanPattern.UNKNOWN])
        return f"{regions} {patterns + ' scans' if patterns else 'B-scans'}".strip()

    def refusal(self, protocol: ScanProtocol) -> str | None:
        """Why a scan with this stated protocol is outside the scope, as the detail of the
        ``OUT_OF_SCOPE`` sentence ("Peripapillary circle scan: this model reads only macular
        line and volume scans"); None when inside or unknown."""
        region_out = (
            bool(self.regions)
            and protocol.region is not ScanRegion.UNKNOWN
            and protocol.region not in self.regions
        )
        pattern_out = (
            bool(self.patterns)
            and protocol.pattern is not ScanPattern.UNKNOWN
            and protocol.pattern not in self.patterns
        )
        if not (region_out or pattern_out):
            return None
        what = protocol.description  # where it was read is on the Scan panel and the report
        return f"{what[:1].upper()}{what[1:]}: this model reads only {self.description}"


#: The scope of a model trained on macular B-scans (Kermany's exports of Spectralis line and
#: volume scans): what the default model states.
DEFAULT_MACULAR_SCOPE = ModelScope(
    patterns=(ScanPattern.LINE, ScanPattern.VOLUME), regions=(ScanRegion.MACULA,)
)


_REGION_ADJECTIVE = {ScanRegion.MACULA: "macular", ScanRegion.OPTIC_DISC: "optic-disc"}


def _members(enum_type: type, values: Any) -> list[Any]:
    if not isinstance(values, list | tuple):
        return []
    known = {m.value: m for m in enum_type}
    return [known[v] for v in values if isinstance(v, str) and v in known]


def _and(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
