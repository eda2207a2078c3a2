"""``octviewer-cli archive``: find studies, analyse them (one or a search, sharded, skipping
studies that hold this model's result), file results back, manage nodes, clear the cache.

Console output names studies by UID and date; patient identifiers appear only in ``find``'s
listing (the user searched for them), never in log lines or report file names.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import sys
import time
from typing import TYPE_CHECKING, TextIO

from octviewer.cli.common import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, log
from octviewer.errors import OCTViewerError

EXIT_CANCELLED = 130  # the shell's code for a run stopped by Ctrl+C

if TYPE_CHECKING:
    from octviewer.core.archive.nodes import ArchiveNode
    from octviewer.core.archive.service import Archive
    from octviewer.core.engine import Engine


def _say(msg: str = "", stream: TextIO | None = None) -> None:
    """Console output of the archive commands (results for the user; logging is diagnostics)."""
    (stream or sys.stdout).write(msg + "\n")


def _ask_password(node: ArchiveNode) -> str | None:
    if not sys.stdin.isatty():
        return None
    return getpass.getpass(f"Password of {node.username} on {node.name}: ")


def _node(args: argparse.Namespace, text: str) -> ArchiveNode:
    from octviewer.core.archive.nodes import resolve_node

    verify: bool | str | None = args.ca_file or (False if args.insecure else None)
    return resolve_node(
        text,
        calling_ae=args.calling_ae,
        move_port=args.move_port,
        retrieve=args.retrieve,
        username=args.username,
        verify_tls=verify,
    )


def _archive(args: argparse.Namespace) -> Archive:
    from octviewer.core.archive.service import Archive

    node = _node(args, args.node)
    if node.verify_tls is False:
        _say(f"WARNING: the certificate of {node.name} is NOT verified (--insecure).", sys.stderr)
    return Archive(node, _ask_password)


def _query(args: argparse.Namespace):  # -> StudyQuery
    from octviewer.core.archive.query import StudyQuery, parse_dates

    date_from, date_to = parse_dates(args.date)
    return StudyQuery(args.patient_id, args.patient_name, date_from, date_to, args.modality)


def _cmd_find(args: argparse.Namespace) -> int:
    archive = _archive(args)
    studies = archive.find(_query(args))
    for st in studies:
        _say(
            f"{st.study_uid}  {st.date or '-':8}  {','.join(st.modalities) or '-':7}  "
            f"{st.n_series if st.n_series is not None else '?'} series  "
            f"{st.patient_id}  {st.patient_name}  {st.description}"
        )
        if args.series:
            for se in archive.series(st.study_uid):
                n = se.n_instances if se.n_instances is not None else "?"
                _say(
                    f"    {se.series_uid}  {se.modality:4} #{se.number:>4}  {n} inst.  {se.description}"
                )
    _say(f"{len(studies)} study(ies) on {archive.node.name}.")
    return EXIT_OK


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1-based) -> (I, N); ValueError when malformed."""
    i, _, n = text.partition("/")
    shard, count = int(i), int(n)
    if not 1 <= shard <= count:
        raise ValueError(text)
    return shard, count


def in_shard(study_uid: str, shard: int, count: int) -> bool:
    """Stable across machines: the study's UID hashed, modulo the shard count."""
    return int(hashlib.sha256(study_uid.encode()).hexdigest(), 16) % count == shard - 1


def _studies(args: argparse.Namespace, archive: Archive, engine: Engine) -> list[str]:
    if args.study:
        return [args.study]
    shard, count = parse_shard(args.shard)
    uids = sorted(st.study_uid for st in archive.find(_query(args)))
    mine = [u for u in uids if in_shard(u, shard, count)]
    todo = (
        mine
        if args.no_skip
        else [u for u in mine if not archive.has_result(u, engine.identity.sha256)]
    )
    _say(
        f"{len(uids)} study(ies) found, {len(mine)} in shard {shard}/{count}, "
        f"{len(mine) - len(todo)} already hold a result of this model: {len(todo)} to analyse."
    )
    return todo


def _cmd_analyze(args: argparse.Namespace) -> int:
    from octviewer.cli.archive_study import analyse_study

    try:
        parse_shard(args.shard)
    except ValueError:
        _say("octviewer-cli: --shard takes I/N with 1 <= I <= N, e.g. 2/4.", sys.stderr)
        return EXIT_USAGE
    if getattr(args, "series", None) and not args.study:
        _say("octviewer-cli: --series needs its --study.", sys.stderr)
        return EXIT_USAGE
    if not args.study and not (args.date or args.modality or args.patient_id or args.patient_name):
        _say("octviewer-cli: give --study, or a search (--date, --modality, ...).", sys.stderr)
        return EXIT_USAGE
    import octviewer

    engine = octviewer.load_model(args.model, device=args.device)
    archive = _archive(args)
    failed = 0
    for k, uid in enumerate(_studies(args, archive, engine), 1):
        t0 = time.perf_counter()
        try:
            lines = analyse_study(archive, engine, uid, args, k)
        except KeyboardInterrupt:  # Ctrl+C: a retrieve under way removed what it had written
            _say(f"study {k}: cancelled; nothing of an unfinished retrieve is kept.", sys.stderr)
            return EXIT_CANCELLED
        except OCTViewerError as e:
            failed += 1
            _say(f"study {k}: {e}", sys.stderr)
            continue
        for line in lines:
            _say(line)
        _say(f"study {k}: done in {time.perf_counter() - t0:.1f} s")
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _cmd_send(args: argparse.Namespace) -> int:
    archive = _archive(args)
    waiting = archive.pending()
    if not waiting:
        _say(f"Nothing waits to be sent to {archive.node.name}.")
        return EXIT_OK
    sent = archive.resend()
    _say(f"{len(sent)} object(s) sent to {archive.node.name}.")
    return EXIT_OK


def _cmd_nodes(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from octviewer.core.archive.nodes import NodeStore, parse_node

    store = NodeStore.load()
    if args.action == "add":
        if not args.name or not args.address:
            _say("octviewer-cli: archive nodes add NAME ADDRESS", sys.stderr)
            return EXIT_USAGE
        node = _node(args, args.address)
        store.add(replace(node, name=args.name))
        _say(f"Node {args.name} added: {parse_node(args.address).address}")
    elif args.action == "remove":
        _say(f"Node {args.name} removed." if store.remove(args.name or "") else "No such node.")
    elif args.action == "test":
        from octviewer.core.archive.service import Archive

        _say(f"{args.name}: {Archive(_node(args, args.name or ''), _ask_password).test()}")
    else:
        for node in store.nodes.values():
            _say(
                f"{node.name}: {node.address} (retrieve {node.retrieve}, our AE {node.calling_ae})"
            )
    return EXIT_OK


def _cmd_clear(_args: argparse.Namespace) -> int:
    from octviewer.core.archive.service import clear_cache

    n, size = clear_cache()
    _say(f"Archive cache cleared: {n} file(s), {size / 1e6:.1f} MB.")
    return EXIT_OK


COMMANDS = {
    "find": _cmd_find,
    "analyze": _cmd_analyze,
    "analyse": _cmd_analyze,
    "send": _cmd_send,
    "nodes": _cmd_nodes,
    "clear-cache": _cmd_clear,
}


def cmd_archive(args: argparse.Namespace) -> int:
    try:
        return COMMANDS[args.archive_command](args)
    except OCTViewerError as e:
        _say(f"octviewer-cli: {e}", sys.stderr)
        return EXIT_SOME_FAILED
    except Exception:
        log.exception("Unexpected error in octviewer-cli archive")
        _say("octviewer-cli: unexpected error (see the log above).", sys.stderr)
        return EXIT_SOME_FAILED


__all__ = ["cmd_archive", "in_shard", "parse_shard"]
