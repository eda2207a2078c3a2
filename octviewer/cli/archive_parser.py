"""The ``octviewer-cli archive`` options (declarative): find, analyze, send, nodes, clear-cache."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_archive_parser(sub: argparse._SubParsersAction, model_arg) -> None:
    a = sub.add_parser(
        "archive",
        help="find studies in a PACS (DICOMweb or DIMSE), analyse them, file results back",
        description="Work with an archive node: a configured node's name, or an address "
        "(dicomweb:https://host:port/path or dimse:CALLED_AE@host:port). Nothing is contacted "
        "unless a node is given. Docs: docs/ARCHIVE.md.",
    )
    a.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    asub = a.add_subparsers(dest="archive_command", metavar="ACTION", required=True)

    f = asub.add_parser("find", help="list studies (and their series) matching a search")
    _node_args(f)
    _query_args(f)
    f.add_argument("--series", action="store_true", help="also list each study's series")

    z = asub.add_parser(
        "analyze",
        aliases=["analyse"],
        help="retrieve a study (or every study of a search), analyse it, write reports, send",
        description="Retrieve one study (--study) or every study matching the search, analyse "
        "its OCT volumes, write de-identified PNG + PDF reports into --out and, with --send, "
        "file an Encapsulated PDF and a Comprehensive SR (TID 1500) into the source study. A "
        "search skips studies that already hold a result of the same model (SHA-256).",
    )
    _node_args(z)
    _query_args(z)
    model_arg(z)
    z.add_argument("--study", metavar="STUDY_UID", help="the study to analyse")
    z.add_argument(
        "--series",
        metavar="SERIES_UID",
        help="with --study: retrieve and analyse only this series (its localizer comes along)",
    )
    z.add_argument("--send", action="store_true", help="file the results into the study")
    z.add_argument(
        "-o", "--out", type=Path, default=Path("octviewer-reports"), help="report folder"
    )
    z.add_argument("--shard", default="1/1", metavar="I/N", help="analyse only shard I of N")
    z.add_argument("--page", choices=("a4", "letter"), default="a4", type=str.lower)
    z.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    z.add_argument(
        "--no-skip", action="store_true", help="analyse studies that already hold a result too"
    )

    s = asub.add_parser("send", help="send the results waiting in the outbox again")
    _node_args(s)

    n = asub.add_parser("nodes", help="list, add or remove configured nodes")
    n.add_argument("action", choices=("list", "add", "remove", "test"), nargs="?", default="list")
    n.add_argument("name", nargs="?", help="node name")
    n.add_argument("address", nargs="?", help="dicomweb:URL or dimse:AE@host:port (add)")
    _node_options(n)

    asub.add_parser("clear-cache", help="delete every retrieved study from the cache")


def _node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", required=True, help="a configured node's name, or its address")
    _node_options(p)


def _node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calling-ae", help="our AE title (default OCTVIEWER)")
    p.add_argument("--move-port", type=int, help="our C-MOVE listening port")
    p.add_argument("--retrieve", choices=("wado", "c-get", "c-move"), help="retrieve method")
    p.add_argument("--user", dest="username", help="DICOMweb user name (password: keyring/ask)")
    p.add_argument("--ca-file", help="trust this CA bundle for the node's https certificate")
    p.add_argument(
        "--insecure", action="store_true", help="do NOT verify the https certificate (visible)"
    )


def _query_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient-id", default="", metavar="ID")
    p.add_argument("--patient-name", default="", metavar="NAME", help="may use * wildcards")
    p.add_argument("--date", default="", metavar="FROM-TO", help="YYYYMMDD-YYYYMMDD or one date")
    p.add_argument("--modality", default="", type=str.upper, choices=("", "OPT", "OP"))
