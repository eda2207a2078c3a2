"""Passwords of archive nodes: in the platform's keyring (the ``keyring`` package), or asked
for once per session and kept only in memory. Never in the node list, a log or a report."""

from __future__ import annotations

import logging
from collections.abc import Callable

from octviewer.core.archive.nodes import ArchiveNode

log = logging.getLogger(__name__)

SERVICE = "octviewer-archive"
_session: dict[tuple[str, str], str] = {}


def _key(node: ArchiveNode) -> tuple[str, str]:
    return (node.address, node.username or "")


def remember(node: ArchiveNode, password: str, *, in_keyring: bool = False) -> bool:
    """Keep ``password`` for this session; also in the keyring when asked (True when stored)."""
    _session[_key(node)] = password
    if not in_keyring:
        return False
    try:
        import keyring

        keyring.set_password(SERVICE, f"{node.username}@{node.address}", password)
        return True
    except Exception as e:  # no keyring backend on this machine: session only
        log.warning("The password could not be stored in the system keyring (%s)", type(e).__name__)
        return False


def password_for(
    node: ArchiveNode, ask: Callable[[ArchiveNode], str | None] | None = None
) -> str | None:
    """The node's password: this session's, the keyring's, else ``ask(node)`` (kept for the
    session); None when the node has no user name or nothing was given."""
    if not node.username:
        return None
    if _key(node) in _session:
        return _session[_key(node)]
    try:
        import keyring

        stored = keyring.get_password(SERVICE, f"{node.username}@{node.address}")
    except Exception as e:
        log.info("No usable system keyring (%s)", type(e).__name__)
        stored = None
    if stored is None and ask is not None:
        stored = ask(node)
    if stored is not None:
        _session[_key(node)] = stored
    return stored


def forget(node: ArchiveNode) -> None:
    """Drop the session's password and the keyring's entry of ``node``."""
    _session.pop(_key(node), None)
    try:
        import keyring

        keyring.delete_password(SERVICE, f"{node.username}@{node.address}")
    except Exception:  # nothing stored, or no keyring
        log.debug("No keyring entry to delete")


def keyring_backend() -> tuple[bool, str]:
    """(usable, description) of the platform keyring: which backend ``keyring`` chose (e.g.
    ``keyring.backends.SecretService.Keyring``), or why there is none. Contacts no server and
    never raises: without a keyring, passwords are asked once per session."""
    try:
        import keyring
        from keyring.backends.fail import Keyring as NoKeyring

        backend = keyring.get_keyring()
    except Exception as e:  # not installed, or a backend that breaks on import
        return False, f"not available ({type(e).__name__}): passwords are asked per session"
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if isinstance(backend, NoKeyring):
        return False, f"none usable ({name}): passwords are asked per session"
    return True, f"{name} (priority {getattr(backend, 'priority', '?')})"
