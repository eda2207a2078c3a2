"""Archive nodes, searches and the objects filed back, without any network (the round trip
against a real Orthanc is tests/test_archive_orthanc.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import pytest

from octviewer.core.archive import NodeStore, StudyQuery, parse_dates, parse_node, resolve_node
from octviewer.core.results import FrameResult, ModelIdentity, ResultFlag, ScanResult
from octviewer.errors import ArchiveConfigError

try:
    import io_factory as f
except ImportError:
    from tests import io_factory as f

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
MODEL = ModelIdentity("octviewer-test", "1.2.3", "f00dbabe" * 8, "mirage_vit")


def test_node_addresses() -> None:
    web = parse_node("dicomweb:https://pacs.example.org:8443/dicom-web/")
    assert web.kind == "dicomweb" and web.url == "https://pacs.example.org:8443/dicom-web"
    assert web.retrieve == "wado" and web.verify_tls is True
    dimse = parse_node("dimse:PACS_AE@10.0.0.5:104")
    assert (dimse.called_ae, dimse.host, dimse.port) == ("PACS_AE", "10.0.0.5", 104)
    assert dimse.calling_ae == "OCTVIEWER" and dimse.retrieve == "c-get"
    assert dimse.address == "dimse:PACS_AE@10.0.0.5:104"
    for bad in ("dicomweb:ftp://x", "dimse:AE@host", "dimse:AE@host:99999", "pacs:1.2.3.4",
                "dimse:THIS_AE_TITLE_IS_TOO_LONG@h:104"):  # fmt: skip
        with pytest.raises(ArchiveConfigError):
            parse_node(bad)
    with pytest.raises(ArchiveConfigError, match="no user name or password"):
        parse_node("dicomweb:https://alice:secret@pacs/dicom-web")
    with pytest.raises(ArchiveConfigError, match="listening port"):
        parse_node("dimse:PACS@h:104", retrieve="c-move")


def test_node_store_keeps_no_password(tmp_path: Path) -> None:
    store = NodeStore.load(tmp_path / "nodes.json")
    store.add(parse_node("dicomweb:https://pacs/dicom-web", name="main", username="alice"))
    store.add(parse_node("dimse:PACS@h:104", name="old", retrieve="c-move", move_port=11112))
    again = NodeStore.load(tmp_path / "nodes.json")
    assert again.nodes == store.nodes
    assert "secret" not in (tmp_path / "nodes.json").read_text()
    assert resolve_node("old", again).move_port == 11112
    assert resolve_node("old", again, calling_ae="OTHER").calling_ae == "OTHER"
    with pytest.raises(ArchiveConfigError, match="No archive node named"):
        resolve_node("nope", again)
    assert again.remove("old") and "old" not in NodeStore.load(tmp_path / "nodes.json").nodes


def test_dates() -> None:
    assert parse_dates("20240101-20240131") == ("20240101", "20240131")
    assert parse_dates("2024-01-01..2024-01-31") == ("20240101", "20240131")
    assert parse_dates("20240101") == ("20240101", "20240101")
    assert parse_dates("20240101-") == ("20240101", "")
    assert StudyQuery(date_from="20240101", date_to="").date_range == "20240101-"
    with pytest.raises(ArchiveConfigError):
        parse_dates("20241301")


def test_sr_and_pdf_objects_file_into_the_source_study(tmp_path: Path) -> None:
    from octviewer.core.archive.objects import findings_in_sr, result_objects, series_label

    src = f.opt_dataset(f.kermany_stack())
    frames = []
    for i in range(3):
        p = np.asarray([0.7, 0.1, 0.1, 0.1], np.float32)
        flags = frozenset({ResultFlag.NOT_OCT}) if i == 1 else frozenset()
        frames.append(FrameResult(i, CLASSES, p, np.log(p), flags))
    result = ScanResult(tuple(frames), MODEL, "cpu", 0.1)
    when = dt.datetime(2024, 5, 6, 7, 8, tzinfo=dt.timezone.utc)
    objs = result_objects(src, b"%PDF-1.4 test", result, when)
    for ds in objs.datasets:
        ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
        back = pydicom.dcmread(tmp_path / "x.dcm")
        assert back.StudyInstanceUID == src.StudyInstanceUID and back.PatientID == src.PatientID
        assert back.SeriesInstanceUID != src.SeriesInstanceUID
        assert (
            back.SeriesDescription == series_label(result)
            and "[f00dbabef00dbabe]" in back.SeriesDescription
        )
    pdf = objs.pdf
    assert pdf.Modality == "DOC" and pdf.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert (
        bytes(pdf.EncapsulatedDocument).startswith(b"%PDF") and pdf.EncapsulatedDocumentLength == 13
    )
    sr = objs.sr
    assert sr.VerificationFlag == "UNVERIFIED" and sr.PreliminaryFlag == "PRELIMINARY"
    groups = findings_in_sr(sr)
    assert [g["finding"] for g in groups] == ["CNV", "NOT-ASSESSED", "CNV"]
    assert groups[0]["probabilities"]["P-CNV"] == pytest.approx(0.7)
    assert groups[1]["probabilities"] == {} and "not an OCT B-scan" in str(groups[1]["comment"])
    assert groups[2]["algorithm"] == {
        "name": "octviewer-test", "version": "1.2.3", "parameters": f"sha256={MODEL.sha256}"
    }  # fmt: skip


@pytest.mark.gui
def test_window_says_a_cancelled_retrieve_was_cancelled(qtbot, tmp_path, monkeypatch) -> None:
    """Cancel in *Open from archive*: no error box, no scan opened, the status bar says so."""
    pytest.importorskip("PySide6")
    from PySide6.QtWidgets import QDialog
    from ui_helpers import shown_window

    from octviewer.errors import ArchiveCancelledError
    from octviewer.ui import archive_dialogs

    def cancelled(_self):
        raise ArchiveCancelledError("web: the retrieve (WADO-RS) was cancelled.", node="web")

    monkeypatch.setenv("OCTVIEWER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(
        archive_dialogs.OpenFromArchiveDialog, "exec", lambda _s: QDialog.DialogCode.Accepted
    )
    monkeypatch.setattr(archive_dialogs.OpenFromArchiveDialog, "retrieve", cancelled)
    window = shown_window(qtbot, tmp_path)
    try:
        assert archive_dialogs.open_from_archive(window) == []
        assert not window.errors
        assert window.statusBar().currentMessage().startswith("Retrieve cancelled")
    finally:
        window.close()


def test_keyring_backend_is_described_and_none_is_no_error(monkeypatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend
    from keyring.backends.fail import Keyring as NoKeyring

    from octviewer.core.archive.credentials import keyring_backend

    class Memory(KeyringBackend):
        priority = 7  # type: ignore[assignment]

        def get_password(self, service, username):
            return None

        def set_password(self, service, username, password):
            pass

        def delete_password(self, service, username):
            pass

    before = keyring.get_keyring()
    try:
        keyring.set_keyring(Memory())
        usable, text = keyring_backend()
        assert usable and text.endswith("Memory (priority 7)")
        keyring.set_keyring(NoKeyring())
        usable, text = keyring_backend()
        assert not usable and text.startswith("none usable (keyring.backends.fail.Keyring)")
    finally:
        keyring.set_keyring(before)
    monkeypatch.setitem(__import__("sys").modules, "keyring", None)  # not installed
    usable, text = keyring_backend()
    assert not usable and text.startswith("not available (ModuleNotFoundError)")
