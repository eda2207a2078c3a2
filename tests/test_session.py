"""The viewer's session without Qt (ndv-style): entries, the analysis queue, export names,
the heatmap splice, the view state and the presenters' text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from octviewer.core.report.naming import safe_stem, unique_name
from octviewer.core.results import FrameResult, ModelIdentity, ScanResult
from octviewer.viewer.session import AnalysisQueue

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
    """The attributes bind_settings reads and writes (ui.settings.Settings without Qt)."""

    overlay_visible = False
    overlay_opacity = 0.7049
    overlay_colormap = "no-such-map"
    overlay_contours = (0.5,)
    physical_aspect = True
    disease_map = False
    map_attention = True
    include_identity = False


def test_view_state_bound_to_settings_clamps_and_defaults() -> None:
    from octviewer.core.overlay import COLORMAPS, DEFAULT_COLORMAP, DEFAULT_OPACITY
    from octviewer.viewer.view_state import ViewState, bind_settings

    fresh = ViewState()
    assert fresh.colormap == DEFAULT_COLORMAP and fresh.opacity == DEFAULT_OPACITY
    v = ViewState()
    bind_settings(v, _Settings())
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

    from octviewer.viewer.view_state import ViewState

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
    from octviewer.viewer.view_state import ViewState

    sp = PixelSpacing(row=0.0039, col=0.0117)
    v = ViewState()
    assert v.aspect(sp) == 1.0
    v.physical_aspect = True
    assert v.aspect(sp) == pytest.approx(sp.aspect) and v.aspect(None) == 1.0


# --- entries, export names and presenters ---------------------------------------------------------
def _scan(n_frames: int = 1, **md):
    from octviewer.core.scan import Modality, Scan, ScanMetadata

    modality = Modality.OCT_VOLUME if n_frames > 1 else Modality.OCT_BSCAN
    meta = ScanMetadata(source_paths=(Path("x.dcm"),), format="DICOM", modality=modality, **md)
    return Scan(frames=np.zeros((n_frames, 8, 12), np.uint8), metadata=meta)


def _entry(uid: int, path: str, scan=None, result=None):
    from octviewer.viewer.entry import EntryStatus, ScanEntry

    status = EntryStatus.DONE if result is not None else EntryStatus.OPENING
    return ScanEntry(uid, Path(path), status=status, scan=scan, result=result)


def test_default_report_name_from_the_file_never_the_patient() -> None:
    from octviewer.viewer.work import default_report_name

    res = ScanResult((_fr(0),), MODEL, "cpu")
    assert default_report_name(_entry(1, "/d/Doe^John scan.dcm", _scan(), res), 0) == (
        "Doe_John_scan_CNV_report.png"
    )
    assert default_report_name(_entry(2, "/d/" + "y" * 90 + ".png"), 0) == "y" * 60 + "_report.png"
    assert default_report_name(_entry(3, "/d/folder"), 0) == "folder_report.png"
    vol = ScanResult((_fr(0), _fr(1, (0.1, 0.1, 0.1, 0.7))), MODEL, "cpu")
    assert default_report_name(_entry(4, "/d/v.dcm", _scan(2), vol), 1) == (
        "v_frame002_NORMAL_report.png"
    )


def test_export_plan_takes_analysed_scans_their_frame_and_unique_names(tmp_path: Path) -> None:
    from octviewer.viewer.work import export_plan

    res = ScanResult((_fr(0),), MODEL, "cpu")
    vol = ScanResult((_fr(0, (0.1, 0.1, 0.1, 0.7)), _fr(1)), MODEL, "cpu")  # 1: least NORMAL
    entries = [
        _entry(1, "/a/scan.jpeg", _scan(), res),
        _entry(2, "/b/scan.jpeg", _scan(), res),
        _entry(3, "/c/opening.dcm"),  # not analysed: no report
        _entry(4, "/d/vol.dcm", _scan(2), vol),
    ]
    plan = export_plan(entries, tmp_path)
    assert [(e.uid, frame, p.name) for e, frame, p in plan] == [
        (1, 0, "scan_CNV_report.png"),
        (2, 0, "scan_CNV_report_.png"),
        (4, 1, "vol_frame002_CNV_report.png"),
    ]
    assert all(p.parent == tmp_path for _, _, p in plan)


def test_entry_summary_and_placeholders() -> None:
    from octviewer.core.results import ResultFlag
    from octviewer.viewer import presenters
    from octviewer.viewer.entry import EntryStatus
    from octviewer.viewer.session import ModelState

    done = _entry(1, "/a/b.jpeg", _scan(), ScanResult((_fr(0),), MODEL, "cpu"))
    summary = presenters.entry_summary
    assert summary(done) == "CNV 70%"
    fundus = ScanResult((_fr(0, flags=frozenset({ResultFlag.NOT_OCT})),), MODEL, "cpu")
    assert summary(_entry(2, "/f.png", _scan(), fundus)) == "not assessed: not an OCT B-scan"
    vol = ScanResult((_fr(0), _fr(1, flags=frozenset({ResultFlag.NOT_OCT}))), MODEL, "cpu")
    assert summary(_entry(3, "/v.dcm", _scan(2), vol)) == (
        "CNV 70% (most suspicious of 2 frames; 1 not assessed)"
    )
    e = _entry(4, "/w.dcm", _scan())
    e.status, e.progress = EntryStatus.ANALYSING, (3, 8)
    assert summary(e) == "Analysing… 3/8"
    ph = presenters.result_placeholder
    assert ph(None, 0, ModelState.NONE) == presenters.NO_SCAN_TEXT
    e.status = EntryStatus.WAITING
    assert ph(e, 0, ModelState.LOADING) == presenters.WAITING_FOR_MODEL_TEXT
    assert ph(e, 0, ModelState.NONE) == presenters.NO_MODEL_TEXT
    e.status = EntryStatus.CANCELLED
    assert ph(e, 0, ModelState.READY) == presenters.CANCELLED_TEXT
    failed = _entry(5, "/x.dcm")
    failed.status, failed.error = EntryStatus.FAILED, "cut short"
    assert ph(failed, 0, ModelState.READY) == "Could not open this file.\n\ncut short"
    assert ph(done, 0, ModelState.READY) is None
    assert ph(done, 5, ModelState.READY) == "Frame 6 was not analysed."


def test_volume_caption_scan_facts_and_model_texts() -> None:
    import datetime as dt

    from octviewer.core.results import ResultFlag
    from octviewer.core.scan import Laterality, PixelSpacing
    from octviewer.viewer import presenters

    scan = _scan(2, spacing=PixelSpacing(row=0.0039, col=0.0117))
    vol = ScanResult((_fr(0), _fr(1, (0.1, 0.1, 0.1, 0.7))), MODEL, "cpu")
    assert presenters.volume_caption(scan, vol, 1) == (
        "frame 2 of 2\nmost suspicious: frame 1 (CNV 70.0 %)"
    )
    none = ScanResult((_fr(0, flags=frozenset({ResultFlag.NOT_OCT})),), MODEL, "cpu")
    assert presenters.volume_caption(scan, none, 0).endswith(presenters.NONE_ASSESSABLE)
    assert presenters.volume_caption(_scan(), none, 0) == ""
    facts = _scan(
        2,
        spacing=PixelSpacing(row=0.0039, col=0.0117),
        laterality=Laterality.RIGHT,
        manufacturer="Heidelberg",
        device_model="Spectralis",
        acquisition_date=dt.date(2020, 5, 4),
        notes=("a note",),
    )
    assert presenters.scan_facts(facts) == (
        "DICOM · OCT volume\n12 × 8 px × 2 frames\npixel 11.7 × 3.9 µm\neye: "
        f"{Laterality.RIGHT.value}\nHeidelberg Spectralis\nacquired 2020-05-04\na note"
    )
    assert presenters.model_status(MODEL) == "Model: octviewer-test 1.2.3 · sha256 f00dbabef00d"
    assert presenters.model_facts(None) == presenters.NO_MODEL_TEXT
    assert presenters.model_facts(MODEL, "cpu") == (
        "octviewer-test 1.2.3\nsha256 f00dbabef00d\nmirage_vit\ndevice: cpu\nlicence: test only"
    )
    assert presenters.frame_label(4, 49) == "Frame 5 / 49"


@pytest.mark.parametrize(
    ("precision", "expected"),
    [("auto", ("auto", None)), ("fp32", ("fp32", None)),  # None: int8 if validated
     ("auto+int8", ("auto", True)), ("fp32+int8", ("fp32", True)),
     ("auto+noint8", ("auto", False))],
)  # fmt: skip
def test_engine_choice_keeps_bf16_setting_beside_int8(monkeypatch, precision, expected) -> None:
    """int8 is a CPU option: on a GPU the engine falls back to the bf16/fp32 choice, kept here."""
    import octviewer.core.engine as engine_module
    from octviewer.viewer import work

    seen = {}
    monkeypatch.setattr(
        engine_module, "Engine", lambda b, **kw: seen.update(kw) or "engine", raising=True
    )
    assert work.make_engine(Path("m.safetensors"), "cuda", precision) == "engine"
    assert (seen["precision"], seen["quantize"]) == expected and seen["device"] == "cuda"
