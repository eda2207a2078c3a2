"""Archive nodes: where octviewer may find studies and file results (DICOMweb or DIMSE).

A node is written as one string, on the command line or in the node list:

- ``dicomweb:https://pacs.example.org:8042/dicom-web`` (QIDO-RS / WADO-RS / STOW-RS under that
  root; optional user name, the password comes from the keyring or is asked per session);
- ``dimse:CALLED_AE@host:104`` (C-ECHO / C-FIND / C-GET or C-MOVE / C-STORE; our AE title is
  ``OCTVIEWER`` unless set, and C-MOVE needs our listening port).

The list lives in ``nodes.json`` in the user's configuration folder (``$OCTVIEWER_CONFIG_DIR``,
else ``~/.config/octviewer``, macOS ``~/Library/Application Support/octviewer``, Windows
``%APPDATA%\\octviewer``). It never holds a password. Nothing is contacted unless a node is
configured or given.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from octviewer.errors import ArchiveConfigError

log = logging.getLogger(__name__)

CONFIG_ENV = "OCTVIEWER_CONFIG_DIR"
DEFAULT_AE = "OCTVIEWER"
RETRIEVE_METHODS = ("wado", "c-get", "c-move")
_AE_RE = re.compile(r"^[ -~]{1,16}$")
_DIMSE_RE = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class ArchiveNode:
    """One archive. ``kind`` "dicomweb" (``url``) or "dimse" (``called_ae``, ``host``, ``port``).

    ``retrieve``: "wado" (DICOMweb), "c-get" (DIMSE default) or "c-move" (to our own storage
    SCP on ``move_port``, listening only while a retrieve runs). ``verify_tls``: True, False
    (visible, explicit choice) or the path of a site's own CA bundle."""

    name: str
    kind: str
    url: str = ""
    called_ae: str = ""
    host: str = ""
    port: int = 0
    calling_ae: str = DEFAULT_AE
    move_port: int | None = None
    retrieve: str = ""
    username: str | None = None
    verify_tls: bool | str = True
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in ("dicomweb", "dimse"):
            raise ArchiveConfigError(f"Archive node {self.name!r}: kind must be dicomweb or dimse.")
        if not self.retrieve:
            object.__setattr__(self, "retrieve", "wado" if self.kind == "dicomweb" else "c-get")
        if self.retrieve not in RETRIEVE_METHODS:
            raise ArchiveConfigError(
                f"Archive node {self.name!r}: retrieve must be one of {', '.join(RETRIEVE_METHODS)}."
            )
        if self.kind == "dimse":
            _check_ae(self.called_ae, self.name)
            _check_ae(self.calling_ae, self.name)
            if self.retrieve == "wado":
                object.__setattr__(self, "retrieve", "c-get")
            if self.retrieve == "c-move" and not self.move_port:
                raise ArchiveConfigError(
                    f"Archive node {self.name!r}: C-MOVE needs our listening port (--move-port)."
                )

    @property
    def address(self) -> str:
        """The node as one string (no credentials): ``dicomweb:URL`` or ``dimse:AE@host:port``."""
        if self.kind == "dicomweb":
            return f"dicomweb:{self.url}"
        return f"dimse:{self.called_ae}@{self.host}:{self.port}"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _check_ae(ae: str, name: str) -> None:
    if not _AE_RE.match(ae) or ae.strip() != ae or "\\" in ae:
        raise ArchiveConfigError(
            f"Archive node {name!r}: {ae!r} is not a valid AE title (1-16 printable characters, "
            "no backslash, no leading or trailing space)."
        )


def parse_node(spec: str, name: str | None = None, **options: object) -> ArchiveNode:
    """A node from its address string (see the module doc); ``options`` set the other fields."""
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "dicomweb":
        parts = urlsplit(rest)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ArchiveConfigError(
                f"{spec!r} is not a DICOMweb address: write dicomweb:https://host:port/path."
            )
        if parts.username or parts.password:
            raise ArchiveConfigError(
                "Put no user name or password into the address: give the user name as its own "
                "setting; the password is kept in the system keyring or asked for."
            )
        url = rest.rstrip("/")
        return ArchiveNode(name or parts.hostname, "dicomweb", url=url, **options)  # type: ignore[arg-type]
    if kind == "dimse":
        m = _DIMSE_RE.match(rest)
        if m is None or not 0 < int(m["port"]) < 65536:
            raise ArchiveConfigError(
                f"{spec!r} is not a DIMSE address: write dimse:CALLED_AE@host:port."
            )
        host = m["host"].strip("[]")
        return ArchiveNode(
            name or m["ae"],
            "dimse",
            called_ae=m["ae"],
            host=host,
            port=int(m["port"]),
            **options,  # type: ignore[arg-type]
        )
    raise ArchiveConfigError(
        f"{spec!r} is not an archive address: write dicomweb:https://host:port/path or "
        "dimse:CALLED_AE@host:port."
    )


def config_home() -> Path:
    """The user's configuration folder of octviewer (``$OCTVIEWER_CONFIG_DIR`` first)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "octviewer"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "octviewer"
    return Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "octviewer"


@dataclass
class NodeStore:
    """The configured nodes, by name, in ``nodes.json`` (no credentials in it)."""

    path: Path
    nodes: dict[str, ArchiveNode] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> NodeStore:
        path = path or config_home() / "nodes.json"
        store = cls(path)
        if not path.is_file():
            return store
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
            for item in items.get("nodes", []):
                node = ArchiveNode(**item)
                store.nodes[node.name] = node
        except (OSError, ValueError, TypeError) as e:
            raise ArchiveConfigError(
                f"The archive node list {path} cannot be read ({e}); fix or delete it."
            ) from e
        return store

    def save(self) -> None:
        from octviewer.core.result_cache import write_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"nodes": [n.to_json() for n in self.nodes.values()]}
        write_atomic(self.path, json.dumps(data, indent=2))

    def add(self, node: ArchiveNode) -> None:
        self.nodes[node.name] = node
        self.save()
        log.info("Archive node %s saved (%s)", node.name, node.kind)

    def remove(self, name: str) -> bool:
        gone = self.nodes.pop(name, None) is not None
        if gone:
            self.save()
        return gone


def resolve_node(text: str, store: NodeStore | None = None, **options: object) -> ArchiveNode:
    """``text`` as an address (``dicomweb:...``, ``dimse:...``) or a configured node's name;
    ``options`` (non-None values) override the node's fields."""
    given = {k: v for k, v in options.items() if v is not None}
    if text.lower().startswith(("dicomweb:", "dimse:")):
        return parse_node(text, **given)
    store = store if store is not None else NodeStore.load()
    node = store.nodes.get(text)
    if node is None:
        known = ", ".join(sorted(store.nodes)) or "none configured"
        raise ArchiveConfigError(
            f"No archive node named {text!r} (configured: {known}). Give an address "
            "(dicomweb:https://host/path or dimse:AE@host:port) or add the node first."
        )
    return replace(node, **given) if given else node
