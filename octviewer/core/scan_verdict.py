"""A whole scan gets a whole-scan verdict: when a volume, series or folder opened as one scan
is not what the model reads, it has no headline class, even if a few of its frames pass.

The rule (one B-scan is judged by its own frame alone):

1. Frames withheld only because they are unreadable (``LOW_QUALITY``) say nothing about what
   the scan *is*; they are set aside.
2. Of the remaining *readable* frames, those withheld for what they show (not an OCT B-scan, a
   protocol outside the model's scope, optic-nerve-head anatomy, unlike the training data:
   :data:`DOMAIN_FLAGS`) are counted. When they are more than :data:`MOST` of the readable
   frames, the scan as a whole is not assessed: an optic-nerve-head radial scan whose 18 frames
   are 14 times "unlike the training data" is not a macular scan with 4 good frames.
3. A scan with no assessable frame at all is not assessed either.

Then every frame that passed on its own carries ``SCAN_NOT_ASSESSED`` (an abstaining flag) with
the scan's reason, so the window headline, the scan list, the report, the summary and "most
suspicious frame" all give no class; each frame keeps its own flags and checks, so it can still
be browsed and, on request, its model output shown as unreliable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from octviewer.core.results import FrameResult, ResultFlag, ScanResult

__all__ = ["DOMAIN_FLAGS", "MOST", "scan_reason", "with_scan_verdict"]

#: Flags that say a frame is not what the model reads (as opposed to unreadable).
DOMAIN_FLAGS = frozenset(
    {
        ResultFlag.NOT_OCT,
        ResultFlag.OUT_OF_SCOPE,
        ResultFlag.NOT_MACULAR,
        ResultFlag.OUT_OF_DISTRIBUTION,
    }
)
#: Share of the readable frames above which the scan as a whole is not assessed.
MOST = 0.5


def _own_flag(fr: FrameResult) -> ResultFlag | None:
    """The frame's own withholding flag, ignoring a whole-scan verdict given earlier."""
    return fr.withholding_flag if fr.withholding_flag is not ResultFlag.SCAN_NOT_ASSESSED else None


def _breakdown(frames: Sequence[FrameResult]) -> str:
    counts = Counter(_own_flag(f) for f in frames)
    counts.pop(None, None)
    return "; ".join(f"{flag.value}: {n}" for flag, n in counts.most_common() if flag)


def scan_reason(frames: Sequence[FrameResult]) -> str | None:
    """The sentence saying why the scan of ``frames`` is not assessed as a whole; None when it
    is, and for a single frame (whose own verdict is the scan's)."""
    if len(frames) <= 1:
        return None
    own = [_own_flag(f) for f in frames]
    withheld = [f for f, flag in zip(frames, own, strict=True) if flag is not None]
    if len(withheld) == len(frames):
        sentences = {f.flag_sentence(flag) for f, flag in zip(frames, own, strict=True)}
        if len(sentences) == 1:  # one reason for all, e.g. the protocol: say it as it is
            return sentences.pop()
        detail = f"none of the {len(frames)} frames could be assessed ({_breakdown(frames)})"
        return ResultFlag.SCAN_NOT_ASSESSED.sentence(detail)
    detail = _domain_detail(frames, own)
    return None if detail is None else ResultFlag.SCAN_NOT_ASSESSED.sentence(detail)


def _domain_detail(frames: Sequence[FrameResult], own: Sequence[ResultFlag | None]) -> str | None:
    """Rule 2's finding ("14 of its 18 readable frames are not what the model reads (...)"),
    or None when the readable frames are mostly what the model reads."""
    readable = [
        f for f, flag in zip(frames, own, strict=True) if flag is not ResultFlag.LOW_QUALITY
    ]
    domain = [f for f in readable if _own_flag(f) in DOMAIN_FLAGS]
    if not readable or len(domain) <= MOST * len(readable):
        return None
    return (
        f"{len(domain)} of its {len(readable)} readable frames are not what the model reads "
        f"({_breakdown(domain)})"
    )


def with_scan_verdict(result: ScanResult) -> ScanResult:
    """``result`` with its whole-scan verdict: ``scan_reason`` set and ``SCAN_NOT_ASSESSED``
    on the frames that passed on their own when the scan as a whole is not assessed. Applying
    it again (e.g. after merging two passes) recomputes it from the frames' own flags."""
    frames = tuple(
        replace(
            f,
            flags=f.flags - {ResultFlag.SCAN_NOT_ASSESSED},
            details={k: v for k, v in f.details.items() if k is not ResultFlag.SCAN_NOT_ASSESSED},
        )
        for f in result.frames
    )
    reason = scan_reason(frames)
    detail = _domain_detail(frames, [_own_flag(f) for f in frames]) if reason else None
    if detail is not None:
        frames = tuple(
            f
            if not f.assessable
            else replace(
                f,
                flags=f.flags | {ResultFlag.SCAN_NOT_ASSESSED},
                details={**f.details, ResultFlag.SCAN_NOT_ASSESSED: detail},
            )
            for f in frames
        )
    return replace(result, frames=frames, scan_reason=reason)
