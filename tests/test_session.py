"""The viewer's session without Qt (ndv-style): entries, the analysis queue, export names,
the heatmap splice, the view state and the presenters' text."""

from __future__ import annotations

import numpy as np
import pytest

from octviewer.core.report.naming import safe_stem, unique_name
from octviewer.core.results import FrameResult, ModelIdentity, ScanResult
from octviewer.ui.session import AnalysisQueue

MODEL = ModelIdentity("octviewer-test", "1.2.3", "f00dbabe" * 8, "mirage_vit", "test only")
CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")


def _fr(i: int, probs=(0.7, 0.1, 0.1, 0.1), **kw) -> FrameResult:
    p = np.asarray(probs, dtype=np.float32)
    return FrameResult(i, CLASSES, p, np.log(p), **kw)


# --- the analysis queue -----------------------------------------------------------------------
def test_queue_runs_one_at_a_time_in_order() -> None:
    q = AnalysisQueue()
    for uid in (1, 2, 3):
        q.add(uid)
    q.add(2)  # already waiting: not twice
    assert q.waiting == [1, 2, 3]
    assert q.next() == 1 and q.running == 1
    assert q.next() is None  # one at a time
    q.add(1)  # the running scan is not queued behind itself
    assert q.waiting == [2, 3]
    q.finish()
    assert q.next() == 2


def test_queue_takes_the_scan_on_screen_first() -> None:
    q = AnalysisQueue()
    for uid in (1, 2, 3):
        q.add(uid)
    q.priority = 3
    assert q.next() == 3
    q.finish()
    q.priority = 7  # not queued: the queue order applies
    assert q.next() == 1


def test_queue_discard_and_clear() -> None:
    q = AnalysisQueue()
    for uid in (1, 2, 3):
        q.add(uid)
    assert q.next() == 1
    assert not q.discard(2) and q.waiting == [3]
    assert q.discard(1) and q.running is None  # the running one: the runner is free
    q.add(4)
    assert q.clear() == [3, 4] and q.waiting == []
    assert q.next() is None


# --- names and the heatmap splice --------------------------------------------------------------
def test_safe_stem_keeps_each_callers_rules() -> None:
    assert safe_stem("ab c/d:é.x") == "ab_c_d_é.x"
    # the CLI strips leading/trailing dots and underscores; the viewer does not
    assert safe_stem("._scan_.", strip=True) == "scan"
    assert safe_stem("._scan_.") == "._scan_."
    # the viewer truncates at 60 characters
    assert safe_stem("x" * 80, max_len=60) == "x" * 60
    assert safe_stem("", max_len=60) == "scan" and safe_stem("..", strip=True) == "scan"


def test_unique_names_cli_numbers_case_insensitively_viewer_adds_underscores() -> None:
    used: set[str] = set()
    assert [unique_name(s, used, ignore_case=True, numbered=True) for s in ("a", "A", "a")] == [
        "a",
        "A_2",
        "a_3",
    ]
    used = set()
    names = [unique_name(n, used) for n in ("x_report.png", "x_report.png", "X_report.png")]
    assert names == ["x_report.png", "x_report_.png", "X_report.png"]
    assert unique_name("x_report.png", used) == "x_report__.png"


def test_with_cam_puts_the_heatmap_into_one_frame_only() -> None:
    res = ScanResult((_fr(0), _fr(1), _fr(2)), MODEL, "cpu")
    cam = np.ones((4, 4), np.float32)
    out = res.with_cam(1, cam, 2)
    assert out.frame(1).cam is cam and out.frame(1).cam_class == 2
    assert out.frame(0) is res.frame(0) and out.frame(2) is res.frame(2)
    assert res.frame(1).cam is None  # the original is unchanged (frozen)
    assert out.model is MODEL and out.device == "cpu"


# --- the view state -----------------------------------------------------------------------------
class _Settings:
    """The attributes ViewState.from_settings reads (ui.settings.Settings without Qt)."""

    overlay_visible = False
    overlay_opacity = 0.7049
    overlay_colormap = "no-such-map"
    overlay_contours = (0.5,)
    physical_aspect = True
    disease_map = False
    map_attention = True
    include_identity = False


def test_view_state_from_settings_clamps_and_defaults() -> None:
    from octviewer.core.overlay import COLORMAPS, DEFAULT_COLORMAP, DEFAULT_OPACITY
    from octviewer.ui.view_state import ViewState

    fresh = ViewState()
    assert fresh.colormap == DEFAULT_COLORMAP and fresh.opacity == DEFAULT_OPACITY
    v = ViewState.from_settings(_Settings())
    assert v.colormap == DEFAULT_COLORMAP  # an unknown name falls back to the default
    assert v.opacity == 0.70 and v.opacity_percent == 70  # the slider's 1 % steps
    assert not v.overlay_visible and v.contours == (0.5,) and v.physical_aspect
    assert not v.disease_map and v.map_attention and not v.include_identity
    v.set_opacity(3.0)
    assert v.opacity == 1.0
    v.set_opacity(-1)
    assert v.opacity == 0.0
    v.set_colormap(COLORMAPS[-1])
    assert v.colormap == COLORMAPS[-1]
    assert v.overlay_look() == {"colormap": COLORMAPS[-1], "opacity": 0.0, "contours": (0.5,)}


def test_view_state_select_and_step_frames() -> None:
    from types import SimpleNamespace

    from octviewer.ui.view_state import ViewState

    volume = SimpleNamespace(n_frames=49, is_volume=True)
    bscan = SimpleNamespace(n_frames=1, is_volume=False)
    v = ViewState()
    assert v.select(1, volume) and v.uid == 1 and v.frame == 24  # a volume opens in the middle
    v.frame = 40
    assert not v.select(1, volume) and v.frame == 40  # already on screen: kept
    assert v.stepped(5, 49) == 45 and v.stepped(100, 49) == 48 and v.stepped(-100, 49) == 0
    assert v.clamp(10**9, 49) == 48  # "last frame"
    assert v.select(2, bscan) and v.frame == 0
    v.frame = 7
    assert v.clamp_frame(1) == 0 and v.frame == 0
    assert v.select(3, None) and v.frame == 0  # not loaded yet


def test_view_state_aspect_follows_the_spacing_only_when_asked() -> None:
    from octviewer.core.scan import PixelSpacing
    from octviewer.ui.view_state import ViewState

    sp = PixelSpacing(row=0.0039, col=0.0117)
    v = ViewState()
    assert v.aspect(sp) == 1.0
    v.physical_aspect = True
    assert v.aspect(sp) == pytest.approx(sp.aspect) and v.aspect(None) == 1.0
