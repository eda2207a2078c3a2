"""DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) with pynetdicom; errors become ArchiveErrors.

C-MOVE sends the instances to our own storage SCP: it listens on the node's ``move_port`` only
while that retrieve runs (loopback when the archive is on this machine, else every interface),
and, like the C-GET receiver, accepts only instances of the study and series asked for; any
other is refused (failure status) and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydicom import Dataset
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from octviewer.core.archive import query as q
from octviewer.core.archive.nodes import ArchiveNode
from octviewer.errors import (
    ArchiveCancelledError,
    ArchiveConnectionError,
    ArchiveError,
    ArchiveRefusedError,
)

log = logging.getLogger(__name__)

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve - FIND
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
GET = "1.2.840.10008.5.1.4.1.2.2.3"
VERIFICATION = "1.2.840.10008.1.1"
# What a retrieve accepts: ophthalmic images and what sits beside them in an eye study.
STORAGE = (
    "1.2.840.10008.5.1.4.1.1.77.1.5.4",  # Ophthalmic Tomography Image
    "1.2.840.10008.5.1.4.1.1.77.1.5.1",  # Ophthalmic Photography 8 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.2",  # Ophthalmic Photography 16 Bit
    "1.2.840.10008.5.1.4.1.1.77.1.5.7",  # Ophthalmic Optical Coherence Tomography En Face
    "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
)
SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLosslessSV1,
            JPEG2000Lossless, JPEG2000, RLELossless]  # fmt: skip
PENDING = (0xFF00, 0xFF01)
REFUSED_NOT_ASKED = 0xC001  # "cannot understand": an instance we did not ask for
REFUSED_CANCELLED = 0xA700  # "out of resources": the user cancelled the retrieve


def _ae(node: ArchiveNode) -> Any:
    from pynetdicom import AE

    # pynetdicom logs every identifier it sends or receives (patient names and IDs) at INFO:
    # keep its log to warnings, so no patient identifier reaches a log.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)

    ae = AE(ae_title=node.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    return ae


@contextmanager
def associated(
    node: ArchiveNode, ae: Any, *, action: str, resendable: bool = False, **kw: Any
) -> Iterator[Any]:
    """An established association with ``node`` (released after), or a clear ArchiveError."""
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.called_ae, **kw)
    except OSError as e:  # e.g. a name that does not resolve
        raise ArchiveConnectionError(
            f"{node.name}: {node.host}:{node.port} could not be reached ({e}).",
            node=node.name,
            resendable=resendable,
        ) from e
    if not assoc.is_established:
        why = (
            f"the archive rejected the association (is our AE title {node.calling_ae!r} "
            f"known to it, and is {node.called_ae!r} its AE title?)"
            if assoc.is_rejected
            else "no association could be made (is the archive running at that address?)"
        )
        raise ArchiveConnectionError(
            f"{node.name}: {action} failed: {why}.", node=node.name, resendable=resendable
        )
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def echo(node: ArchiveNode) -> None:
    """C-ECHO: the connection test of a DIMSE node."""
    ae = _ae(node)
    ae.add_requested_context(VERIFICATION)
    with associated(node, ae, action="the connection test (C-ECHO)") as assoc:
        status = assoc.send_c_echo()
    if not status or status.Status != 0:
        raise ArchiveRefusedError(f"{node.name}: C-ECHO was not answered.", node=node.name)


def _find(node: ArchiveNode, identifier: Dataset, what: str) -> list[Dataset]:
    ae = _ae(node)
    ae.add_requested_context(FIND)
    found: list[Dataset] = []
    with associated(node, ae, action=what) as assoc:
        for status, ident in assoc.send_c_find(identifier, FIND):
            code = int(status.Status) if status else -1
            if code in PENDING and ident is not None:
                found.append(ident)
            elif code not in (0x0000, *PENDING):
                raise ArchiveRefusedError(
                    f"{node.name}: {what} failed (status 0x{code & 0xFFFF:04X}).", node=node.name
                )
    return found


def find_studies(node: ArchiveNode, query: q.StudyQuery) -> list[q.StudyInfo]:
    found = _find(node, q.study_identifier(query), "the study search (C-FIND)")
    return [q.study_from(ds) for ds in found]


def find_series(node: ArchiveNode, study_uid: str) -> list[q.SeriesInfo]:
    found = _find(node, q.series_identifier(study_uid), "the series search (C-FIND)")
    return [q.series_from(ds) for ds in found]


def _receiver(
    study_uid: str,
    series_uids: Sequence[str],
    keep: Callable[[Dataset], None],
    cancel: Callable[[], bool] | None = None,
) -> Callable[[Any], int]:
    """The C-STORE handler of a retrieve: keeps what was asked for, refuses the rest, and
    once ``cancel()`` is True refuses whatever still arrives (the retrieve then stops)."""
    wanted = set(series_uids)

    def handle(event: Any) -> int:
        if cancel is not None and cancel():
            return REFUSED_CANCELLED
        ds = event.dataset
        ds.file_meta = event.file_meta
        if ds.get("StudyInstanceUID") != study_uid or (
            wanted and ds.get("SeriesInstanceUID") not in wanted
        ):
            log.warning(
                "Refused an instance that was not asked for (from %s)",
                event.assoc.requestor.ae_title,
            )
            return REFUSED_NOT_ASKED
        try:
            keep(ds)
        except (OSError, ArchiveError):
            log.exception("A received instance could not be kept")
            return 0xA700  # out of resources
        return 0x0000

    return handle


def _identifiers(study_uid: str, series_uids: Sequence[str]) -> list[Dataset]:
    out = []
    for series_uid in series_uids or [""]:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        ds.StudyInstanceUID = study_uid
        if series_uid:
            ds.SeriesInstanceUID = series_uid
        out.append(ds)
    return out


def _check_retrieve(
    node: ArchiveNode, responses: Any, what: str, cancel: Callable[[], bool] | None
) -> None:
    for status, _ident in responses:
        code = int(status.Status) if status else -1
        if cancel is not None and cancel():
            raise ArchiveCancelledError(f"{node.name}: {what} was cancelled.", node=node.name)
        if code in PENDING or code == 0x0000:
            continue
        if code == 0xB000:  # some sub-operations failed (e.g. one we refused)
            log.warning("%s: some instances were not transferred (0xB000)", what)
            continue
        raise ArchiveRefusedError(
            f"{node.name}: {what} failed (status 0x{code & 0xFFFF:04X}"
            + (
                ": the archive does not know our AE title as a destination"
                if code == 0xA801
                else ""
            )
            + ").",
            node=node.name,
        )


def retrieve_get(
    node: ArchiveNode,
    study_uid: str,
    series_uids: Sequence[str],
    keep: Callable[[Dataset], None],
    cancel: Callable[[], bool] | None = None,
) -> None:
    """C-GET on one association: the archive sends the instances back on it."""
    from pynetdicom import build_role, evt

    ae = _ae(node)
    ae.add_requested_context(GET)
    for uid in STORAGE:
        ae.add_requested_context(uid, SYNTAXES)
    roles = [build_role(uid, scp_role=True) for uid in STORAGE]
    handlers = [(evt.EVT_C_STORE, _receiver(study_uid, series_uids, keep, cancel))]
    with associated(
        node, ae, action="the retrieve (C-GET)", ext_neg=roles, evt_handlers=handlers
    ) as assoc:
        for ident in _identifiers(study_uid, series_uids):
            _check_retrieve(node, assoc.send_c_get(ident, GET), "the retrieve (C-GET)", cancel)


def retrieve_move(
    node: ArchiveNode,
    study_uid: str,
    series_uids: Sequence[str],
    keep: Callable[[Dataset], None],
    cancel: Callable[[], bool] | None = None,
) -> None:
    """C-MOVE to our own storage SCP, which listens only while this runs."""
    from pynetdicom import evt

    scp = _ae(node)
    for uid in STORAGE:
        scp.add_supported_context(uid, SYNTAXES)
    bind = "127.0.0.1" if node.host in ("127.0.0.1", "localhost", "::1") else ""
    handlers = [(evt.EVT_C_STORE, _receiver(study_uid, series_uids, keep, cancel))]
    try:
        server = scp.start_server(
            (bind, int(node.move_port or 0)), block=False, evt_handlers=handlers
        )
    except OSError as e:
        raise ArchiveConnectionError(
            f"{node.name}: our C-MOVE port {node.move_port} could not be opened ({e}).",
            node=node.name,
        ) from e
    log.info("Storage SCP listening on port %s for this retrieve", node.move_port)
    try:
        ae = _ae(node)
        ae.add_requested_context(MOVE)
        with associated(node, ae, action="the retrieve (C-MOVE)") as assoc:
            for ident in _identifiers(study_uid, series_uids):
                responses = assoc.send_c_move(ident, node.calling_ae, MOVE)
                _check_retrieve(node, responses, "the retrieve (C-MOVE)", cancel)
    finally:
        server.shutdown()
        log.info("Storage SCP closed")


def store(node: ArchiveNode, datasets: Sequence[Dataset]) -> None:
    """C-STORE each dataset; raises (resendable) on the first refusal."""
    ae = _ae(node)
    for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(uid, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    with associated(node, ae, action="sending the results (C-STORE)", resendable=True) as assoc:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = int(status.Status) if status else -1
            if code == 0x0000 or 0xB000 <= code <= 0xBFFF:
                continue
            meaning = (
                "the archive is out of resources"
                if 0xA700 <= code <= 0xA7FF
                else "no answer (the connection was lost)"
                if code == -1
                else "the archive refused the object"
            )
            raise ArchiveRefusedError(
                f"{node.name}: sending the results (C-STORE) failed: {meaning} (status "
                f"0x{code & 0xFFFF:04X}). They are kept and can be sent again.",
                node=node.name,
                resendable=True,
            )
    log.info("C-STORE: %d object(s) stored on %s", len(datasets), node.name)
