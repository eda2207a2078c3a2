"""The archive in the window (thin: every archive step is octviewer.core.archive):
*File > Open from archive…*, *File > Send results to archive*, *File > Archive nodes…*.

Network calls run on a worker thread (:func:`run_blocking`: a modal progress dialog with
Cancel keeps the window responsive); Qt objects are only touched on the GUI thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from octviewer.core.archive import ArchiveNode, NodeStore, StudyQuery, parse_dates, parse_node
from octviewer.errors import ArchiveCancelledError, OCTViewerError

log = logging.getLogger(__name__)
T = TypeVar("T")
_pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="octviewer-archive")


def run_blocking(parent: QWidget, label: str, work: Callable[[Callable[[], bool]], T]) -> T:
    """``work(cancelled)`` on the archive thread behind a modal progress dialog; re-raises its
    error; Cancel sets ``cancelled()`` (a retrieve checks it as each instance arrives)."""
    stop = threading.Event()
    future = _pool.submit(work, stop.is_set)
    dlg = QProgressDialog(label, "Cancel", 0, 0, parent)
    dlg.setWindowModality(Qt.WindowModality.WindowModal)
    dlg.setMinimumDuration(300)
    dlg.canceled.connect(stop.set)
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: loop.quit() if future.done() else None)
    timer.start(50)
    loop.exec()
    timer.stop()
    dlg.close()
    return future.result()


def _ask_password(parent: QWidget) -> Callable[[ArchiveNode], str | None]:
    def ask(node: ArchiveNode) -> str | None:  # only ever called on the GUI thread (see below)
        text, ok = QInputDialog.getText(
            parent, "Archive login", f"Password of {node.username} on {node.name}:",
            QLineEdit.EchoMode.Password,
        )  # fmt: skip
        return text if ok else None

    return ask


def archive_for(parent: QWidget, node: ArchiveNode) -> Any:
    """An Archive whose password is settled now, on the GUI thread (keyring or asked)."""
    from octviewer.core.archive.credentials import password_for
    from octviewer.core.archive.service import Archive

    password_for(node, _ask_password(parent))
    return Archive(node)


class NodesDialog(QDialog):
    """Add, test (C-ECHO / QIDO-RS ping) and remove archive nodes; clear the retrieval cache."""

    def __init__(self, parent: QWidget, store: NodeStore | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Archive nodes")
        self.store = store or NodeStore.load()
        self.list = QListWidget()
        self.name, self.address, self.user = QLineEdit(), QLineEdit(), QLineEdit()
        self.address.setPlaceholderText(
            "dicomweb:https://host:port/dicom-web  or  dimse:AE@host:104"
        )
        self.our_ae = QLineEdit("OCTVIEWER")
        self.method = QComboBox()
        self.method.addItems(["wado", "c-get", "c-move"])
        self.move_port = QSpinBox()
        self.move_port.setRange(0, 65535)
        self.insecure = QCheckBox("Do NOT verify the https certificate (not recommended)")
        self.keyring = QCheckBox("Remember the password in the system keyring")
        form = QFormLayout()
        for label, w in (("Name", self.name), ("Address", self.address), ("Our AE title", self.our_ae),
                         ("Retrieve by", self.method), ("C-MOVE port (ours)", self.move_port),
                         ("User (DICOMweb)", self.user)):  # fmt: skip
            form.addRow(label, w)
        form.addRow(self.insecure)
        form.addRow(self.keyring)
        buttons = QHBoxLayout()
        for text, slot in (("Add", self.add), ("Test", self.test), ("Remove", self.remove),
                           ("Clear archive cache", self.clear_cache)):  # fmt: skip
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for part in (self.list, form, buttons, close):
            (layout.addWidget if isinstance(part, QWidget) else layout.addLayout)(part)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for node in self.store.nodes.values():
            self.list.addItem(f"{node.name}: {node.address} (retrieve {node.retrieve})")

    def selected(self) -> ArchiveNode | None:
        row = self.list.currentRow()
        nodes = list(self.store.nodes.values())
        return nodes[row] if 0 <= row < len(nodes) else None

    def add(self) -> bool:
        try:
            method = self.method.currentText()
            node = parse_node(self.address.text(), name=self.name.text().strip() or None,
                              calling_ae=self.our_ae.text().strip() or "OCTVIEWER",
                              retrieve=method if self.address.text().startswith("dimse") or method == "wado" else "",
                              move_port=self.move_port.value() or None,
                              username=self.user.text().strip() or None,
                              verify_tls=not self.insecure.isChecked())  # fmt: skip
        except OCTViewerError as e:
            QMessageBox.warning(self, "Archive node", str(e))
            return False
        self.store.add(node)
        self.refresh()
        return True

    def test(self) -> str:
        node = self.selected()
        if node is None:
            return ""
        try:
            archive = archive_for(self, node)
            message = run_blocking(self, f"Testing {node.name}…", lambda _c: archive.test())
        except OCTViewerError as e:
            message = str(e)
        QMessageBox.information(self, "Archive node", f"{node.name}: {message}")
        return message

    def remove(self) -> None:
        node = self.selected()
        if node is not None:
            self.store.remove(node.name)
            self.refresh()

    def clear_cache(self) -> None:
        from octviewer.core.archive.service import clear_cache

        n, size = clear_cache()
        QMessageBox.information(
            self, "Archive cache", f"Deleted {n} file(s) ({size / 1e6:.1f} MB)."
        )


class OpenFromArchiveDialog(QDialog):
    """Search a node's studies, list their series, and retrieve the chosen series (the study's
    only OCT series is chosen when the list shows; with none chosen, the study's OCT scans)."""

    def __init__(self, parent: QWidget, store: NodeStore | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open from archive")
        self.store = store or NodeStore.load()
        self.node = QComboBox()
        self.node.addItems(list(self.store.nodes))
        self.patient_id, self.patient_name, self.dates = QLineEdit(), QLineEdit(), QLineEdit()
        self.dates.setPlaceholderText("YYYYMMDD-YYYYMMDD")
        self.modality = QComboBox()
        self.modality.addItems(["OPT", "OP", ""])
        form = QFormLayout()
        for label, w in (("Archive", self.node), ("Patient ID", self.patient_id),
                         ("Patient name", self.patient_name), ("Dates", self.dates),
                         ("Modality", self.modality)):  # fmt: skip
            form.addRow(label, w)
        search = QPushButton("Search")
        search.clicked.connect(self.search)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(
            ["Date", "Patient", "Description", "Modalities", "Series"]
        )
        self.table.itemSelectionChanged.connect(self.show_series)
        self.series = QListWidget()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for w in (search, self.table, self.series, buttons):
            layout.addWidget(w)
        self.studies: list[Any] = []
        self.found_series: list[Any] = []
        self.archive: Any = None

    def search(self) -> None:
        name = self.node.currentText()
        if not name:
            QMessageBox.information(
                self, "Open from archive", "Add an archive node first (File > Archive nodes…)."
            )
            return
        try:
            date_from, date_to = parse_dates(self.dates.text())
            query = StudyQuery(self.patient_id.text().strip(), self.patient_name.text().strip(),
                               date_from, date_to, self.modality.currentText())  # fmt: skip
            self.archive = archive_for(self, self.store.nodes[name])
            self.studies = run_blocking(self, "Searching…", lambda _c: self.archive.find(query))
        except OCTViewerError as e:
            QMessageBox.warning(self, "Open from archive", str(e))
            return
        self.table.setRowCount(len(self.studies))
        for r, st in enumerate(self.studies):
            cells = (st.date, f"{st.patient_name} ({st.patient_id})", st.description,
                     ",".join(st.modalities), str(st.n_series or ""))  # fmt: skip
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))

    def chosen(self) -> Any:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        row = rows[0].row() if rows else self.table.currentRow()
        return self.studies[row] if 0 <= row < len(self.studies) else None

    def show_series(self) -> None:
        st = self.chosen()
        self.series.clear()
        self.found_series = []
        if st is None or self.archive is None:
            return
        try:
            found = run_blocking(
                self, "Listing series…", lambda _c: self.archive.series(st.study_uid)
            )
        except OCTViewerError as e:
            self.series.addItem(str(e))
            return
        self.found_series = list(found)
        for se in found:
            self.series.addItem(
                f"{se.modality} #{se.number} {se.description} ({se.n_instances or '?'} instances)"
            )
        oct_rows = [i for i, se in enumerate(found) if se.modality == "OPT"]
        if len(oct_rows) == 1:  # the one OCT series is what the user most likely wants
            self.series.setCurrentRow(oct_rows[0])

    def chosen_series(self) -> Any:
        row = self.series.currentRow()
        return self.found_series[row] if 0 <= row < len(self.found_series) else None

    def retrieve(self) -> list[Any]:
        """The chosen series (or, with none chosen, the study's OCT scans) retrieved into the
        cache: the files to open (or [])."""
        st = self.chosen()
        if st is None or self.archive is None:
            return []
        se = self.chosen_series()
        if se is None:
            got = run_blocking(
                self,
                "Retrieving the study…",
                lambda cancelled: self.archive.retrieve(st.study_uid, cancel=cancelled),
            )
        else:
            got = run_blocking(
                self,
                "Retrieving the series…",
                lambda cancelled: self.archive.retrieve_series(
                    st.study_uid, se.series_uid, cancel=cancelled
                ),
            )
        return got.scan_files()


def open_from_archive(window: Any) -> list[int]:
    """*File > Open from archive…*: search, choose a study and series, open it like a dropped
    file."""
    dlg = OpenFromArchiveDialog(window)
    if dlg.exec() != QDialog.DialogCode.Accepted:
        return []
    try:
        paths = dlg.retrieve()
    except ArchiveCancelledError:
        window.status.say(
            "Retrieve cancelled: nothing was opened, and what had arrived was removed."
        )
        return []
    except OCTViewerError as e:
        window.show_error("Open from archive", str(e))
        return []
    return window.open_paths(paths) if paths else []


def send_results(window: Any) -> bool:
    """*File > Send results to archive*: the current scan's PDF and SR into its study (with the
    patient's identity, which the archive needs); a refusal keeps them for sending again."""
    from octviewer.core.archive.filing import objects_for
    from octviewer.viewer.residency import read_scan

    entry = window.current_entry()
    store = NodeStore.load()
    if entry is None or entry.result is None:
        window.show_error("Send results to archive", "Open a scan and wait for its analysis first.")
        return False
    if not store.nodes:
        window.show_error(
            "Send results to archive", "Add an archive node first (File > Archive nodes…)."
        )
        return False
    name, ok = QInputDialog.getItem(
        window, "Send results to archive", "Archive:", list(store.nodes), 0, False
    )
    if not ok:
        return False
    try:
        scan = entry.scan or read_scan(entry.path, entry.series)[0]
        objs = objects_for(scan, entry.result, page=window.settings.report_page)
        archive = archive_for(window, store.nodes[name])
        sent = run_blocking(window, "Sending results…", lambda _c: archive.send(objs.datasets))
    except OCTViewerError as e:
        resend = (
            " The results are kept: send again when the archive is back."
            if getattr(e, "resendable", False)
            else ""
        )
        window.show_error("Send results to archive", str(e) + resend)
        return False
    window.statusBar().showMessage(f"{len(sent)} object(s) filed into the study on {name}", 8000)
    return True


def manage_nodes(window: Any) -> None:
    NodesDialog(window).exec()


__all__ = ["NodesDialog", "OpenFromArchiveDialog", "run_blocking"]
