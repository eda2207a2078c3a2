"""Writing report files: the PNG encoding with the report's text chunks, and one atomic
writer for the PNG and the PDF."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from octviewer.core.filemode import apply_umask
from octviewer.errors import ReportError


def png_bytes(img: Image.Image, **save: object) -> bytes:
    """``img`` encoded as PNG with its text chunks (the report record) kept."""
    info = PngInfo()
    for k, v in img.info.items():
        if isinstance(v, str):
            info.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info, **save)
    return buf.getvalue()


def write_report_file(path: Path, data: bytes) -> None:
    """Write a report atomically: a temporary name first, then renamed, so a failed write never
    leaves a half-written report; the file gets the user's normal mode (mkstemp makes 0600)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".octviewer-", suffix=path.suffix, dir=path.parent)
        try:
            apply_umask(fd)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ReportError(
            f"The report could not be written to {path}: {e.strerror or e}. "
            "Check that the folder exists, is writable and has free space."
        ) from e
