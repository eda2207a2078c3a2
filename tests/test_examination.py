"""Judge the examination: the model's scope against the protocol a file states, the whole-scan
verdict of a volume, "not assessed" means no numbers in the summary, and each flag's sentence
written once and true to the input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from octviewer.core import summary
from octviewer.core.inference import AnalysisRequest
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult
from octviewer.core.scan import ScanPattern, ScanProtocol, ScanRegion
from octviewer.core.scan_verdict import scan_reason, with_scan_verdict
from octviewer.core.scope import DEFAULT_MACULAR_SCOPE, ModelScope

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
MODEL = ModelIdentity("octviewer-test", "1.2.3", "f00dbabe" * 8, "resnet", "test only")


def _fr(i: int, flags=frozenset(), probs=(0.9, 0.05, 0.03, 0.02), **kw) -> FrameResult:
    p = np.asarray(probs, np.float32)
    return FrameResult(i, CLASSES, p, np.log(p + 1e-6), frozenset(flags), **kw)


# --- the model's scope ----------------------------------------------------------------------
def test_scope_round_trips_through_a_training_domain() -> None:
    domain = {
        "manufacturers": ["Heidelberg Engineering"],
        **DEFAULT_MACULAR_SCOPE.to_training_domain(),
    }
    assert domain["scan_patterns"] == ["line", "volume"] and domain["regions"] == ["macula"]
    assert ModelScope.from_training_domain(domain) == DEFAULT_MACULAR_SCOPE
    assert DEFAULT_MACULAR_SCOPE.description == "macular line and volume scans"


def test_a_circle_scan_around_the_disc_is_outside_a_macular_scope() -> None:
    circle = ScanProtocol(ScanPattern.CIRCLE, ScanRegion.OPTIC_DISC, source=".vol header")
    why = DEFAULT_MACULAR_SCOPE.refusal(circle)
    assert why == "Peripapillary circle scan: this model reads only macular line and volume scans"
    sentence = ResultFlag.OUT_OF_SCOPE.sentence(why)
    assert sentence.startswith("Not assessed: Peripapillary circle scan")
    # a radial scan that does not state its region is still outside (pattern), a macular
    # volume is inside, and a protocol the file does not state is left to the pixels
    assert DEFAULT_MACULAR_SCOPE.refusal(ScanProtocol(ScanPattern.RADIAL)) is not None
    assert (
        DEFAULT_MACULAR_SCOPE.refusal(ScanProtocol(ScanPattern.VOLUME, ScanRegion.MACULA)) is None
    )
    assert DEFAULT_MACULAR_SCOPE.refusal(ScanProtocol()) is None
    assert DEFAULT_MACULAR_SCOPE.refusal(ScanProtocol(region=ScanRegion.OPTIC_DISC)) is not None


def test_a_bundle_that_states_no_scope_gates_nothing() -> None:
    scope = ModelScope.from_training_domain({"scan_patterns": "line", "regions": [3, "nowhere"]})
    assert not scope.is_stated
    assert scope.refusal(ScanProtocol(ScanPattern.CIRCLE, ScanRegion.OPTIC_DISC)) is None


# --- the whole-scan verdict -----------------------------------------------------------------
def _volume(own: list[set[ResultFlag]]) -> ScanResult:
    return ScanResult(tuple(_fr(i, f) for i, f in enumerate(own)), MODEL, "cpu")


def test_a_volume_mostly_unlike_what_the_model_reads_is_not_assessed_as_a_whole() -> None:
    """The 18-frame optic-nerve-head radial folder: 14 withheld, 4 pass on their own."""
    ood, onh = ResultFlag.OUT_OF_DISTRIBUTION, ResultFlag.NOT_MACULAR
    res = with_scan_verdict(_volume([{ood}] * 11 + [{onh}] * 3 + [set()] * 4))
    assert not res.assessed_as_whole
    assert res.scan_reason.startswith("Not assessed: 14 of its 18 readable frames")
    assert "unlike the training data: 11" in res.scan_reason
    assert res.assessable_frames == ()  # the four that passed carry the scan's verdict
    passed = res.frame(17)
    assert ResultFlag.SCAN_NOT_ASSESSED in passed.flags and passed.reason == res.scan_reason
    assert res.frame(0).withholding_flag is ood  # each frame keeps its own verdict
    assert res.most_suspicious_frame() == 0  # none assessable: the first, and presenters say so
    # applying it again (two passes merged) gives the same
    assert with_scan_verdict(res) == res


def test_low_quality_frames_do_not_count_for_what_the_scan_is() -> None:
    low, ood = ResultFlag.LOW_QUALITY, ResultFlag.OUT_OF_DISTRIBUTION
    # 6 unreadable, 2 foreign, 4 fine: 2 of 6 readable frames are foreign -> assessed
    res = with_scan_verdict(_volume([{low}] * 6 + [{ood}] * 2 + [set()] * 4))
    assert res.assessed_as_whole and len(res.assessable_frames) == 4
    # 3 of 5 readable foreign -> not assessed
    res = with_scan_verdict(_volume([{low}] * 6 + [{ood}] * 3 + [set()] * 2))
    assert not res.assessed_as_whole


def test_one_reason_for_every_frame_is_said_as_it_is() -> None:
    scope = ResultFlag.OUT_OF_SCOPE
    frames = [
        _fr(i, {scope}, details={scope: "Radial scan: this model reads only X"}) for i in range(3)
    ]
    reason = scan_reason(frames)
    assert reason == "Not assessed: Radial scan: this model reads only X."
    mixed = [_fr(0, {ResultFlag.LOW_QUALITY}), _fr(1, {ResultFlag.NOT_OCT})]
    assert "none of the 2 frames could be assessed" in scan_reason(mixed)


def test_a_single_frame_is_its_own_verdict() -> None:
    assert scan_reason([_fr(0, {ResultFlag.OUT_OF_DISTRIBUTION})]) is None
    res = with_scan_verdict(_volume([set()]))
    assert res.assessed_as_whole and res.scan_reason is None


# --- "not assessed" means no numbers --------------------------------------------------------
def test_summary_rows_of_not_assessed_frames_carry_no_probabilities(tmp_path: Path) -> None:
    frames = (
        _fr(0, {ResultFlag.NOT_OCT}, probs=(0.9999, 0.0001, 0.0, 0.0)),
        _fr(1, {ResultFlag.OUT_OF_DISTRIBUTION}, ood_score=4.0, ood_threshold=2.7),
        _fr(2),
    )
    res = ScanResult(frames, MODEL, "cpu")
    rows = summary.rows_for_result("fundus.png", res, 3)
    path = summary.write_csv(rows, tmp_path / "s.csv", CLASSES)
    with path.open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    for row in table[:2]:
        assert row["class"] == row["confidence"] == ""
        assert all(row[f"p_{c}"] == "" for c in CLASSES), row
    assert table[1]["ood_score"] == "4.0" and table[1]["reason"]  # the check's figures stay
    assert table[2]["p_CNV"] == "0.9" and table[2]["class"] == "CNV"
    doc = json.loads(summary.write_json(rows, tmp_path / "s.json").read_text("utf-8"))
    assert doc["results"][0]["probabilities"] == {} and doc["results"][0]["confidence"] is None
    # an expert asks: the raw numbers come back, the class stays empty
    shown = summary.rows_for_result("fundus.png", res, 3, show_unreliable=True)
    assert shown[0].probabilities["CNV"] == 0.9999 and shown[0].predicted_class is None
    # the API keeps them behind an explicit accessor
    assert frames[0].presented_probabilities is None and frames[0].presented_confidence is None
    assert float(frames[0].model_output()[0]) > 0.99


def test_imageability_line_counts_assessable_frames() -> None:
    res = ScanResult((_fr(0, {ResultFlag.LOW_QUALITY}), _fr(1), _fr(2), _fr(3)), MODEL, "cpu")
    rows = summary.rows_for_result("v.dcm", res, 4)
    line = summary.imageability_line([*rows, summary.failed_row("bad.png", "empty")])
    assert (
        line == "Imageability: 3 of 4 analysed frame(s) assessable (75.0 %); 0 below image quality."
    )
    assert summary.imageability_line([]) is None


# --- sentences true to the input ------------------------------------------------------------
def test_no_sentence_calls_an_image_a_b_scan_before_it_is_known_to_be_one() -> None:
    for flag in (ResultFlag.NOT_OCT, ResultFlag.OUT_OF_DISTRIBUTION, ResultFlag.SCAN_NOT_ASSESSED):
        assert "this B-scan" not in flag.warning, flag
    assert "this image is unlike" in ResultFlag.OUT_OF_DISTRIBUTION.warning


def test_each_abstaining_flag_outranks_the_cautions_and_the_order_is_stated() -> None:
    from octviewer.core.results import FLAG_PRECEDENCE

    order = [f.name for f in FLAG_PRECEDENCE if f.abstains]
    assert order == [
        "NOT_OCT",
        "OUT_OF_SCOPE",
        "LOW_QUALITY",
        "NOT_MACULAR",
        "OUT_OF_DISTRIBUTION",
        "SCAN_NOT_ASSESSED",
    ]
    fr = _fr(
        0,
        {ResultFlag.OUT_OF_DISTRIBUTION, ResultFlag.LOW_QUALITY, ResultFlag.LOW_CONFIDENCE},
        details={ResultFlag.LOW_QUALITY: "the retina is cut off at the top of the frame"},
    )
    assert fr.reason == (
        "Not assessed: image quality too low: the retina is cut off at the top of the frame. "
        "Use a better frame or repeat the scan."
    )
    assert fr.cautions == [ResultFlag.LOW_CONFIDENCE]


# --- sidecar files of a folder --------------------------------------------------------------
def test_a_folder_says_which_kinds_of_file_it_did_not_read(tmp_path: Path, data_dir: Path) -> None:
    import shutil

    import octviewer

    src = data_dir / "io" / "kermany" / "NORMAL-2633503-1.jpeg"
    folder = tmp_path / "Smith_John_scan"
    folder.mkdir()
    for i in range(3):
        shutil.copy(src, folder / f"bscan_{i:03d}.jpeg")
    (folder / "Smith_John_positions.csv").write_text("frame,x0,y0\n0,1,2\n", encoding="utf-8")
    (folder / "export.xml").write_text("<export/>", encoding="utf-8")
    scan = octviewer.load(folder)
    assert scan.n_frames == 3
    note = next(n for n in scan.metadata.notes if "not read" in n)
    assert note.startswith("2 other file(s) in the folder were not read (.csv, .xml)")
    assert "Smith" not in note  # by type only: a file name can hold the patient's name
    # a folder with nothing else says nothing
    (folder / "Smith_John_positions.csv").unlink()
    (folder / "export.xml").unlink()
    assert not any("not read" in n for n in octviewer.load(folder).metadata.notes)


# --- through the real engine (a tiny bundle that states the macular scope) ---------------------
def _scoped_engine(tmp_path: Path):
    from octviewer.core.engine import Engine

    try:
        from helpers_models import make_tiny_bundle
    except ImportError:  # run as tests.test_examination
        from tests.helpers_models import make_tiny_bundle

    domain = {
        "manufacturers": ["Heidelberg Engineering"],
        **DEFAULT_MACULAR_SCOPE.to_training_domain(),
    }
    bundle = make_tiny_bundle(tmp_path / "scoped.safetensors", training_domain=domain)
    return Engine(bundle, device="cpu")


def test_the_real_circle_scan_is_not_assessed_for_its_protocol(
    tmp_path: Path, data_dir: Path
) -> None:
    """The real Spectralis peripapillary circle scan (.vol, scan pattern 2): not assessed
    because of its protocol, before anything its pixels say; the expert can still see the output."""
    import octviewer

    engine = _scoped_engine(tmp_path)
    scan = octviewer.load(data_dir / "io" / "vendor" / "circular-valid.vol")
    assert scan.is_oct  # the file states an OCT scan: the pixel check does not override it
    fr = engine.analyze(scan, AnalysisRequest(cam=False)).frames[0]
    assert fr.withholding_flag is ResultFlag.OUT_OF_SCOPE
    assert fr.reason == (
        "Not assessed: Peripapillary circle scan: this model reads only macular line and "
        "volume scans."
    )
    assert fr.presented_class is None and fr.model_output().shape == (4,)
    # a line scan of the same device is inside the scope: its verdict is left to the other checks
    line = octviewer.load(data_dir / "io" / "vendor" / "Willis_B_716_0.vol")
    assert (
        ResultFlag.OUT_OF_SCOPE
        not in engine.analyze(line, AnalysisRequest(cam=False)).frames[0].flags
    )


def test_a_re_patterned_vol_and_a_bundle_without_scope(tmp_path: Path, data_dir: Path) -> None:
    import shutil

    import octviewer
    from octviewer.core.engine import Engine

    radial = tmp_path / "radial.vol"
    shutil.copy(data_dir / "io" / "vendor" / "Willis_B_716_0.vol", radial)
    with radial.open("r+b") as fh:  # HSF-OCT-103 header: ScanPattern at byte 96
        fh.seek(96)
        fh.write((5).to_bytes(4, "little"))
    scan = octviewer.load(radial)
    assert scan.metadata.protocol.pattern is ScanPattern.RADIAL
    fr = _scoped_engine(tmp_path).analyze(scan, AnalysisRequest(cam=False)).frames[0]
    assert fr.withholding_flag is ResultFlag.OUT_OF_SCOPE and "Radial scan" in fr.reason
    # a bundle that states no scope does not gate on the protocol
    try:
        from helpers_models import make_tiny_bundle
    except ImportError:
        from tests.helpers_models import make_tiny_bundle
    plain = Engine(make_tiny_bundle(tmp_path / "plain.safetensors"), device="cpu")
    assert (
        ResultFlag.OUT_OF_SCOPE
        not in plain.analyze(scan, AnalysisRequest(cam=False)).frames[0].flags
    )


def test_a_low_quality_frame_of_a_volume_is_withheld_and_skipped(
    tmp_path: Path, data_dir: Path
) -> None:
    """A 3-frame volume whose middle frame lost a third of its A-scans (a blink): that frame is
    not assessed for quality, the volume still is, and the most suspicious frame skips it."""
    import dataclasses

    import octviewer
    from training.data.degrade import degrade

    scan = octviewer.load(data_dir / "io" / "kermany" / "DRUSEN-8261063-3.jpeg")
    clean = scan.frames[0]
    bad = degrade(clean, "blink", 0.35, seed=1)
    vol = dataclasses.replace(scan, frames=np.stack([clean, bad, clean]))
    res = _scoped_engine(tmp_path).analyze(vol, AnalysisRequest(cam=False))
    assert res.frame(1).withholding_flag is ResultFlag.LOW_QUALITY
    assert "A-scans" in res.frame(1).reason
    assert res.assessed_as_whole and res.most_suspicious_frame() != 1
    assert {f.quality.acceptable for f in (res.frame(0), res.frame(2))} == {True}


def test_a_dicom_opt_of_the_optic_disc_is_not_assessed_as_a_whole(tmp_path: Path) -> None:
    """A multi-frame OPT of real B-scans whose Anatomic Region Sequence names the optic nerve
    head: every frame withheld for its protocol, and the volume as a whole says so once."""
    from pydicom import Dataset
    from pydicom.sequence import Sequence

    import octviewer

    try:
        import io_factory as fac
    except ImportError:  # run as tests.test_examination
        from tests import io_factory as fac

    ds = fac.opt_dataset(fac.kermany_stack())
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
        "81016008",
        "SCT",
        "Optic nerve head",
    )
    ds.AnatomicRegionSequence = Sequence([code])
    scan = octviewer.load(fac.write(ds, tmp_path / "onh.dcm"))
    assert scan.is_volume and scan.metadata.protocol.region is ScanRegion.OPTIC_DISC
    res = _scoped_engine(tmp_path).analyze(scan, AnalysisRequest(cam=False))
    assert {f.withholding_flag for f in res.frames} == {ResultFlag.OUT_OF_SCOPE}
    assert not res.assessed_as_whole
    assert res.scan_reason.startswith("Not assessed: Volume scan of the optic disc: this model")
    rows = summary.rows_for_result("onh.dcm", res, scan.n_frames)
    assert all(r.scan_assessable is False and not r.probabilities for r in rows)
