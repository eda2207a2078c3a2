"""Archives (PACS): find studies, retrieve them into a cache the user can clear, and file
results back (Encapsulated PDF + Comprehensive SR) — Qt-free. Docs: docs/ARCHIVE.md.

- :mod:`.nodes` node addresses and the node list; :mod:`.credentials` passwords (keyring);
- :mod:`.query` searches and their results; :mod:`.dicomweb` / :mod:`.dimse` the two kinds;
- :mod:`.objects` the PDF and SR instances; :mod:`.service` one node as one object, the cache
  and the outbox (results that could not be sent stay there and can be sent again).

Needs the ``archive`` extra (pynetdicom, dicomweb-client, highdicom, keyring).
"""

from __future__ import annotations

from octviewer.core.archive.nodes import ArchiveNode, NodeStore, parse_node, resolve_node
from octviewer.core.archive.query import SeriesInfo, StudyInfo, StudyQuery, parse_dates

__all__ = [
    "ArchiveNode",
    "NodeStore",
    "SeriesInfo",
    "StudyInfo",
    "StudyQuery",
    "parse_dates",
    "parse_node",
    "resolve_node",
]
