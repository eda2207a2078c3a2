"""Archive nodes, searches and the objects filed back, without any network (the round trip
against a real Orthanc is tests/test_archive_orthanc.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from octviewer.core.archive import NodeStore, StudyQuery, parse_dates, parse_node, resolve_node
from octviewer.errors import ArchiveConfigError


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
