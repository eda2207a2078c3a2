"""The archive round trip against a real Orthanc (tests/archive_server.py): find, retrieve by
WADO-RS, C-GET and C-MOVE, analyse, file the PDF and the SR back by STOW-RS and C-STORE, read
the SR back with highdicom, the PDF's page, the refusal paths, and the de-identified PNG.

Seeds: real OCT DICOM built from real B-scans — a 3-frame Ophthalmic Tomography volume from
tests/data with its real infrared localizer, and (when ../shared/data is present) a 49-frame
volume from Kermany B-scans.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

import octviewer
from octviewer import cli
from octviewer.core.archive import StudyQuery, credentials, parse_node
from octviewer.core.archive.objects import findings_in_sr
from octviewer.core.archive.service import Archive
from octviewer.errors import ArchiveConnectionError, ArchiveRefusedError

try:
    import archive_server as srv
    import io_factory as f
    from helpers_models import make_tiny_bundle
except ImportError:  # run from the repository root as a package
    from tests import archive_server as srv
    from tests import io_factory as f
    from tests.helpers_models import make_tiny_bundle

pytestmark = [
    pytest.mark.skipif(srv.missing_reason() is not None, reason=str(srv.missing_reason())),
    pytest.mark.slow,
]
pytest.importorskip("pynetdicom", reason="needs the archive extra: pip install -e '.[archive]'")

PATIENT = {
    "PatientName": "Zyxwood^Quentin",
    "PatientID": "QX-770012",
    "PatientBirthDate": "19411203",
}
SHARED_KERMANY = Path(__file__).resolve().parents[2] / "shared" / "data" / "kermany"


def seed_study(folder: Path, frames: np.ndarray, date: str) -> tuple[str, Path]:
    """A study: an OPT volume of ``frames`` and its real IR localizer (same patient/study)."""
    folder.mkdir(parents=True, exist_ok=True)
    loc = pydicom.dcmread(f.FUNDUS)
    positions = f.localizer_positions(len(frames), int(loc.Rows), int(loc.Columns))
    vol = f.opt_dataset(frames, localizer_uid=str(loc.SOPInstanceUID), positions=positions)
    loc.SOPInstanceUID = loc.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    for item in vol.PerFrameFunctionalGroupsSequence:
        item.OphthalmicFrameLocationSequence[0].ReferencedSOPInstanceUID = loc.SOPInstanceUID
    loc.SeriesInstanceUID = pydicom.uid.generate_uid()
    for ds in (vol, loc):
        ds.StudyInstanceUID = vol.StudyInstanceUID
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = date, "101112", "1", ""
        for k, v in PATIENT.items():
            setattr(ds, k, v)
    f.write(vol, folder / "vol.dcm")
    f.write(loc, folder / "localizer.dcm")
    return str(vol.StudyInstanceUID), folder


def kermany_49() -> np.ndarray | None:
    if not SHARED_KERMANY.is_dir():
        return None
    paths = sorted(SHARED_KERMANY.glob("*/*.jpeg"))
    frames = [np.asarray(Image.open(p).convert("L")) for p in paths]
    same = [a for a in frames if a.shape == (496, 512)][:49]
    return np.stack(same) if len(same) == 49 else None


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("orthanc")
    server = srv.start_orthanc(root)
    try:
        studies = {}
        uid, _ = seed_study(root / "seed-small", f.kermany_stack(), "20240305")
        studies["small"] = uid
        big = kermany_49()
        if big is not None:
            studies["49"] = seed_study(root / "seed-49", big, "20240401")[0]
        for p in sorted(root.glob("seed-*/*.dcm")):
            server.upload(p)
        server.studies = studies  # type: ignore[attr-defined]
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def web_node(server, **kw):
    node = parse_node(server.dicomweb, name="web", username=srv.USER, **kw)
    credentials.remember(node, srv.PASSWORD)
    return node


def nodes(server) -> dict[str, object]:
    return {
        "wado": web_node(server),
        "c-get": parse_node(server.dimse, name="dimse"),
        "c-move": parse_node(
            server.dimse, name="dimse-move", retrieve="c-move", move_port=server.move_port
        ),
    }


@pytest.mark.parametrize("kind", ["wado", "c-get"])
def test_test_and_find(orthanc, kind: str) -> None:
    archive = Archive(nodes(orthanc)[kind])
    assert archive.test() in ("QIDO-RS answered", "C-ECHO answered")
    found = archive.find(StudyQuery(patient_id="QX-770012", modality="OPT"))
    assert orthanc.studies["small"] in {s.study_uid for s in found}
    small = next(s for s in found if s.study_uid == orthanc.studies["small"])
    assert small.date == "20240305" and "OPT" in small.modalities
    assert (
        archive.find(StudyQuery(date_from="20240301", date_to="20240310"))[0].study_uid
        == small.study_uid
    )
    assert not archive.find(StudyQuery(patient_id="NOBODY"))
    series = archive.series(small.study_uid)
    assert {s.modality for s in series} == {"OPT", "OP"}


@pytest.mark.parametrize("kind", ["wado", "c-get", "c-move"])
def test_retrieve_opens_with_the_readers(orthanc, kind: str) -> None:
    archive = Archive(nodes(orthanc)[kind])
    got = archive.retrieve(orthanc.studies["small"])
    assert len(got.files) == 2
    [volume] = got.scan_files()
    scan = octviewer.load(volume)
    assert scan.n_frames == 3 and scan.localizer is not None  # the localizer found beside it
    assert scan.localizer.positions is not None and len(scan.localizer.positions) == 3


@pytest.mark.parametrize("kind", ["wado", "c-get", "c-move"])
def test_retrieve_series_brings_that_series_and_its_localizer(orthanc, kind: str) -> None:
    """A series chosen in the list is retrieved alone (series level) and opened alone; an OCT
    series brings the localizer its frames refer to, an en-face series comes by itself."""
    archive = Archive(nodes(orthanc)[kind])
    study = orthanc.studies["small"]
    by_modality = {s.modality: s.series_uid for s in archive.series(study)}
    got = archive.retrieve_series(study, by_modality["OPT"])
    [volume] = got.files  # the chosen series only
    assert got.scan_files() == [volume]
    assert pydicom.dcmread(volume, stop_before_pixels=True).SeriesInstanceUID == by_modality["OPT"]
    cached = sorted(got.folder.glob("*.dcm"))
    assert len(cached) == 2  # its localizer beside it, nothing else of the study
    scan = octviewer.load(volume)
    assert scan.n_frames == 3 and scan.localizer is not None
    assert scan.localizer.positions is not None

    shutil.rmtree(got.folder)  # the en-face series alone: one file, no OCT
    [enface] = archive.retrieve_series(study, by_modality["OP"]).files
    assert pydicom.dcmread(enface, stop_before_pixels=True).Modality == "OP"
    assert sorted(p.name for p in got.folder.glob("*.dcm")) == [enface.name]


@pytest.mark.parametrize("kind", ["wado", "c-get", "c-move"])
def test_cancel_after_the_first_instance_keeps_nothing(orthanc, kind: str) -> None:
    """Cancel asked while the retrieve runs stops it at the next instance (WADO-RS: in the
    middle of the streamed response); the files it wrote are removed, none is half written."""
    from octviewer.core.archive.service import archive_cache
    from octviewer.errors import ArchiveCancelledError

    archive = Archive(nodes(orthanc)[kind])
    cache = archive_cache() / "studies"
    arrived: list[str] = []

    def cancelled() -> bool:
        arrived.extend(p.name for p in cache.rglob("*.dcm") if p.name not in arrived)
        return bool(arrived)  # Cancel pressed once the first instance is in

    with pytest.raises(ArchiveCancelledError, match="cancelled"):
        archive.retrieve(orthanc.studies["small"], cancel=cancelled)
    assert len(arrived) == 1  # stopped after one of the study's two instances
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing partial stays
    got = archive.retrieve(orthanc.studies["small"])  # and a retrieve afterwards is whole
    assert len(got.files) == 2


def test_c_move_refuses_what_was_not_asked_for(orthanc, caplog) -> None:
    """While our storage SCP listens for a C-MOVE, an unrelated instance sent to it is refused."""
    from pynetdicom import AE

    node = nodes(orthanc)["c-move"]
    stranger = f.opt_dataset(f.kermany_stack()[:1])
    statuses: list[int] = []

    def intrude() -> None:  # runs inside the retrieve, while the SCP listens
        ae = AE(ae_title="INTRUDER")
        ae.add_requested_context(f.OPT_SOP)
        assoc = ae.associate("127.0.0.1", node.move_port, ae_title=node.calling_ae)
        statuses.append(int(assoc.send_c_store(stranger).Status))
        assoc.release()

    def keep(ds: pydicom.Dataset) -> None:
        kept.append(ds)
        if len(kept) == 1:
            intrude()

    from octviewer.core.archive import dimse

    caplog.set_level(logging.WARNING, logger="octviewer.core.archive.dimse")
    kept: list[pydicom.Dataset] = []
    dimse.retrieve_move(node, orthanc.studies["small"], (), keep)
    assert statuses == [dimse.REFUSED_NOT_ASKED]
    assert len(kept) == 2 and all(d.StudyInstanceUID == orthanc.studies["small"] for d in kept)
    assert "Refused an instance that was not asked for" in caplog.text


def filed_objects(orthanc, study_uid: str) -> dict[str, pydicom.Dataset]:
    """The study's instances filed by octviewer (DOC, SR), read back from Orthanc's REST API."""
    out = {}
    study = orthanc.rest("POST", "/tools/lookup", data=study_uid).json()[0]["ID"]
    for inst in orthanc.rest("GET", f"/studies/{study}/instances").json():
        tags = orthanc.rest("GET", f"/instances/{inst['ID']}/simplified-tags").json()
        if tags.get("Modality") in ("DOC", "SR"):
            raw = orthanc.rest("GET", f"/instances/{inst['ID']}/file").content
            import io

            out[tags["Modality"]] = pydicom.dcmread(io.BytesIO(raw))
    return out


def delete_filed(orthanc, study_uid: str) -> None:
    study = orthanc.rest("POST", "/tools/lookup", data=study_uid).json()[0]["ID"]
    for s in orthanc.rest("GET", f"/studies/{study}/series").json():
        if s["MainDicomTags"].get("Modality") in ("DOC", "SR"):
            orthanc.rest("DELETE", f"/series/{s['ID']}")


@pytest.mark.parametrize("kind", ["wado", "c-get"])
def test_analyze_and_file_results_into_the_study(orthanc, bundle, tmp_path, kind) -> None:
    """CLI: retrieve, analyse, de-identified reports, then the PDF and SR filed (STOW / C-STORE)."""
    import pypdfium2 as pdfium

    uid = orthanc.studies["small"]
    node = nodes(orthanc)[kind]
    out = tmp_path / "reports"
    args = ["archive", "analyze", "--node", node.address, "--study", uid, "--send", "--out", str(out),
            "--model", str(bundle), "--device", "cpu"]  # fmt: skip
    if kind == "wado":
        args += ["--user", srv.USER]
    try:
        assert cli.main(args) == 0
        filed = filed_objects(orthanc, uid)
        assert set(filed) == {"DOC", "SR"}
        pdf, sr = filed["DOC"], filed["SR"]
        source = pydicom.dcmread(
            next(out.parent.rglob("*.dcm"), None) or f.FUNDUS, stop_before_pixels=True
        )
        for ds in (pdf, sr):
            assert ds.StudyInstanceUID == uid and ds.PatientID == "QX-770012"
            assert ds.SeriesInstanceUID not in {source.get("SeriesInstanceUID")}
        assert sr.VerificationFlag == "UNVERIFIED" and sr.CompletionFlag == "COMPLETE"
        groups = findings_in_sr(sr)
        assert len(groups) == 3 and [g["label"] for g in groups] == [
            "frame 1",
            "frame 2",
            "frame 3",
        ]
        sha = octviewer.load_model(bundle, device="cpu").identity.sha256
        assert all(g["algorithm"]["parameters"] == f"sha256={sha}" for g in groups)
        for g in groups:
            assert (g["finding"] == "NOT-ASSESSED" and g["comment"]) or len(g["probabilities"]) == 4
        ref = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
        assert ref.ReferencedSOPSequence[0].ReferencedSOPClassUID == f.OPT_SOP
        doc = pdfium.PdfDocument(
            bytes(pdf.EncapsulatedDocument)[: int(pdf.EncapsulatedDocumentLength)]
        )
        assert len(doc) == 1
        text = doc[0].get_textpage().get_text_range()
        assert octviewer.RESEARCH_ONLY in text and "QX-770012" in text  # filed with identity
        doc.close()
        # the de-identified exports stay de-identified
        pngs = sorted(out.glob("*.png"))
        assert pngs and all(
            "QX-770012" not in p.name and "Zyxwood" not in p.name for p in out.iterdir()
        )
        with Image.open(pngs[0]) as im:
            im.load()
            assert not any("QX-770012" in v or "Zyxwood" in v for v in im.text.values())
        page = pdfium.PdfDocument(sorted(out.glob("*.pdf"))[0])
        assert "QX-770012" not in page[0].get_textpage().get_text_range()
        page.close()
    finally:
        delete_filed(orthanc, uid)


def test_cli_analyze_one_series(orthanc, bundle, tmp_path, capsys) -> None:
    node = nodes(orthanc)["c-get"]
    uid = orthanc.studies["small"]
    opt = next(s for s in Archive(node).series(uid) if s.modality == "OPT")
    base = ["archive", "analyze", "--node", node.address, "--model", str(bundle),
            "--device", "cpu", "--out", str(tmp_path / "out")]  # fmt: skip
    assert cli.main([*base, "--study", uid, "--series", opt.series_uid]) == 0
    out = capsys.readouterr().out
    assert "study 1: 1 instance(s) retrieved (c-get)" in out  # the series, not the study
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".pdf", ".png"]
    assert cli.main([*base, "--series", opt.series_uid]) == cli.EXIT_USAGE
    assert "--series needs its --study" in capsys.readouterr().err


def test_cli_says_a_cancelled_run_was_cancelled(orthanc, bundle, tmp_path, capsys, monkeypatch):
    """Ctrl+C while a study is retrieved: the retrieve removes what it wrote (see above), the
    command says so and ends with 130."""
    from octviewer.cli import archive_study

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(archive_study, "analyse_study", interrupted)
    node = nodes(orthanc)["c-get"]
    args = ["archive", "analyze", "--node", node.address, "--study", orthanc.studies["small"],
            "--model", str(bundle), "--device", "cpu", "--out", str(tmp_path)]  # fmt: skip
    assert cli.main(args) == 130
    assert "study 1: cancelled" in capsys.readouterr().err


def test_batch_skips_studies_with_this_models_result_and_shards(
    orthanc, bundle, tmp_path, capsys
) -> None:
    node = nodes(orthanc)["c-get"]
    uid = orthanc.studies["small"]
    base = ["archive", "analyze", "--node", node.address, "--modality", "OPT", "--date", "20240305",
            "--model", str(bundle), "--device", "cpu", "--out", str(tmp_path)]  # fmt: skip
    try:
        assert cli.main([*base, "--send"]) == 0
        assert "1 to analyse" in capsys.readouterr().out
        assert cli.main(base) == 0
        assert "1 already hold a result of this model: 0 to analyse" in capsys.readouterr().out
        from octviewer.cli.archive import in_shard

        mine = [i for i in (1, 2) if in_shard(uid, i, 2)]
        assert len(mine) == 1
        assert cli.main([*base, "--no-skip", "--shard", f"{3 - mine[0]}/2"]) == 0
        assert "0 in shard" in capsys.readouterr().out
    finally:
        delete_filed(orthanc, uid)


def test_refusals_are_clear_and_lose_nothing(orthanc, tmp_path) -> None:
    from octviewer.core.archive.objects import encapsulated_pdf
    from octviewer.core.results import ModelIdentity, ScanResult

    uid = orthanc.studies["small"]
    src = pydicom.dcmread(
        next((tmp_path.parent).glob("**/seed-small/vol.dcm"), None) or f.FUNDUS,
        stop_before_pixels=True,
    )
    src.StudyInstanceUID = uid
    result = ScanResult((), ModelIdentity("m", "1", "ab" * 32, "x"), "cpu", 0.0)
    doc = encapsulated_pdf(src, b"%PDF-1.4\n%%EOF\n", result, __import__("datetime").datetime.now())
    # association rejected: a called AE title the archive does not answer to
    wrong = parse_node(orthanc.dimse.replace(srv.CALLED_AE, "NOTTHEPACS"), name="wrong")
    with pytest.raises(ArchiveConnectionError, match="rejected the association") as e:
        Archive(wrong).send([doc])
    assert e.value.resendable and len(Archive(wrong).pending()) == 1
    # HTTP 401: the wrong password; the object waits in the outbox, then goes with the right one
    web = parse_node(orthanc.dicomweb, name="web401", username=srv.USER)
    credentials.remember(web, "wrong")
    with pytest.raises(ArchiveRefusedError, match="HTTP 401"):
        Archive(web).send([doc])
    assert len(Archive(web).pending()) == 1
    credentials.remember(web, srv.PASSWORD)
    assert len(Archive(web).resend()) == 1 and not Archive(web).pending()
    # HTTP 404: a wrong DICOMweb root
    lost = parse_node(orthanc.dicomweb.replace("/dicom-web", "/nothing-here"), name="web404",
                      username=srv.USER)  # fmt: skip
    credentials.remember(lost, srv.PASSWORD)
    with pytest.raises(ArchiveRefusedError, match="HTTP 404"):
        Archive(lost).find(StudyQuery())
    delete_filed(orthanc, uid)


def test_out_of_resources_is_reported_and_kept(tmp_path) -> None:
    """A storage SCP (pynetdicom) that answers 0xA700: the refusal is named, nothing is lost."""
    from pynetdicom import AE, evt

    port = srv.free_port()
    scp = AE(ae_title="FULLPACS")
    scp.add_supported_context("1.2.840.10008.5.1.4.1.1.104.1")
    server = scp.start_server(("127.0.0.1", port), block=False,
                              evt_handlers=[(evt.EVT_C_STORE, lambda e: 0xA700)])  # fmt: skip
    try:
        from octviewer.core.archive.objects import encapsulated_pdf
        from octviewer.core.results import ModelIdentity, ScanResult

        src = pydicom.dcmread(f.FUNDUS, stop_before_pixels=True)
        result = ScanResult((), ModelIdentity("m", "1", "ab" * 32, "x"), "cpu", 0.0)
        doc = encapsulated_pdf(
            src, b"%PDF-1.4\n%%EOF\n", result, __import__("datetime").datetime.now()
        )
        node = parse_node(f"dimse:FULLPACS@127.0.0.1:{port}", name="full")
        with pytest.raises(ArchiveRefusedError, match="out of resources") as e:
            Archive(node).send([doc])
        assert e.value.resendable and len(Archive(node).pending()) == 1
    finally:
        server.shutdown()
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.gui
def test_window_open_from_archive_send_results_and_print(
    qtbot, orthanc, bundle, tmp_path, monkeypatch
) -> None:
    """The window's archive commands against Orthanc: add and test a node, search, retrieve,
    open, send the PDF and SR into the study; and export the printable PDF."""
    pytest.importorskip("PySide6")
    from PySide6.QtWidgets import QInputDialog, QMessageBox

    from octviewer.core.engine import Engine
    from octviewer.ui import file_commands
    from octviewer.ui.archive_dialogs import NodesDialog, OpenFromArchiveDialog, send_results

    try:
        from ui_helpers import shown_window
    except ImportError:
        from tests.ui_helpers import shown_window

    monkeypatch.setenv("OCTVIEWER_CONFIG_DIR", str(tmp_path / "config"))
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _p, _t, text: shown.append(text))
    window = shown_window(qtbot, tmp_path)
    try:
        nodes = NodesDialog(window)
        nodes.name.setText("orthanc")
        nodes.address.setText(orthanc.dimse)
        nodes.method.setCurrentText("c-get")
        assert nodes.add()
        nodes.list.setCurrentRow(0)
        assert nodes.test() == "C-ECHO answered"

        dlg = OpenFromArchiveDialog(window)
        dlg.patient_id.setText("QX-770012")
        dlg.dates.setText("20240305")
        dlg.search()
        assert dlg.table.rowCount() == 1
        dlg.table.selectRow(0)
        assert dlg.series.count() == 2  # the study's OCT volume and its localizer
        assert dlg.chosen_series().modality == "OPT"  # the only OCT series, chosen
        enface_row = next(i for i, se in enumerate(dlg.found_series) if se.modality == "OP")
        dlg.series.setCurrentRow(enface_row)
        [enface] = dlg.retrieve()  # the chosen series, and only it, is opened
        assert pydicom.dcmread(enface, stop_before_pixels=True).Modality == "OP"
        dlg.series.setCurrentRow(1 - enface_row)
        paths = dlg.retrieve()
        assert len(paths) == 1
        assert pydicom.dcmread(paths[0], stop_before_pixels=True).Modality == "OPT"

        c = window.controller
        c.set_engine(Engine(bundle, device="cpu"))
        with qtbot.waitSignal(c.result_ready, timeout=120_000):
            window.open_paths(paths)
        monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("orthanc", True))
        assert send_results(window), window.errors
        assert set(filed_objects(orthanc, orthanc.studies["small"])) == {"DOC", "SR"}

        out = tmp_path / "printed.pdf"
        with qtbot.waitSignal(c.export_finished, timeout=120_000):
            assert file_commands.export_current(window, out)
        assert out.read_bytes().startswith(b"%PDF")
        assert window.act["archive_open"].text() == "Open from &archive…"
    finally:
        delete_filed(orthanc, orthanc.studies["small"])
        window.close()
