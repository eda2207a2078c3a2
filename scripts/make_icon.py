"""Draw the octviewer icon: resources/icons/octviewer.svg and a 256 px PNG rendered from it.

A stylised OCT B-scan (retinal layers with the foveal dip) on a dark rounded square, with a
warm attention spot. Run: ``python scripts/make_icon.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "icons"

SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 256 256" width="256" height="256">
  <defs>
    <linearGradient id="bg" x1="0" y1="0" x2="0" y2="1">
      <stop offset="0" stop-color="#1B3A5C"/>
      <stop offset="1" stop-color="#0C1B2C"/>
    </linearGradient>
    <radialGradient id="heat" cx="0.5" cy="0.5" r="0.5">
      <stop offset="0" stop-color="#FCD34D" stop-opacity="0.95"/>
      <stop offset="0.45" stop-color="#F97316" stop-opacity="0.65"/>
      <stop offset="1" stop-color="#B91C1C" stop-opacity="0"/>
    </radialGradient>
  </defs>
  <rect x="8" y="8" width="240" height="240" rx="52" fill="url(#bg)"/>
  <!-- retinal layers: inner layers with the smooth foveal pit, bright RPE band below -->
  <path d="M24 96 C 70 88, 92 90, 106 108 C 116 124, 140 124, 150 108 C 164 90, 186 88, 232 96" fill="none" stroke="#C9D6E3" stroke-width="9" stroke-linecap="round"/>
  <path d="M24 118 C 70 112, 94 114, 108 126 C 118 136, 138 136, 148 126 C 162 114, 186 112, 232 118" fill="none" stroke="#8CA3BA" stroke-width="6" stroke-linecap="round"/>
  <path d="M24 140 C 80 136, 176 136, 232 140" fill="none" stroke="#6E8AA6" stroke-width="5" stroke-linecap="round"/>
  <path d="M24 162 C 80 158, 176 158, 232 162" fill="none" stroke="#F1F5F9" stroke-width="14" stroke-linecap="round"/>
  <path d="M24 184 C 80 182, 176 182, 232 184" fill="none" stroke="#4B6680" stroke-width="8" stroke-linecap="round" opacity="0.8"/>
  <circle cx="160" cy="150" r="38" fill="url(#heat)"/>
</svg>
"""


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    OUT.mkdir(parents=True, exist_ok=True)
    svg_path = OUT / "octviewer.svg"
    svg_path.write_text(SVG, encoding="utf-8")
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(svg_path))
    img = QImage(256, 256, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(p, QRectF(0, 0, 256, 256))
    p.end()
    png = OUT / "octviewer.png"
    if not img.save(str(png)):
        print(f"could not write {png}", file=sys.stderr)
        return 1
    print(f"wrote {svg_path} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
