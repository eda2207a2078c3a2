"""About, model card, MIRAGE weights and error dialogs."""

from __future__ import annotations

import contextlib
import html
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QMessageBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import octviewer
from octviewer.core.model.card import finetune_command, model_facts

if TYPE_CHECKING:
    from octviewer.core.model.config import ModelConfig

MIRAGE_LICENCE = (
    "MIRAGE weights (Morano et al., npj Digital Medicine 2025): CC BY-NC-ND 4.0 — "
    "non-commercial research use only."
)
KERMANY_LICENCE = (
    "Kermany et al. 2018 OCT images (Mendeley Data, doi:10.17632/rscbjbr9sj): CC BY 4.0."
)
TRAIN_COMMAND = finetune_command()  # the app's placeholder spelling of FINETUNE_COMMAND


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"octviewer": octviewer.__version__, "Python": platform.python_version()}
    for pkg in ("PySide6-Essentials", "torch", "timm", "pydicom", "numpy", "Pillow", "safetensors"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def about_html() -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in _versions().items()
    )
    return f"""
<h2>octviewer {html.escape(octviewer.__version__)}</h2>
<p>Open retinal OCT scans, classify them with a local MIRAGE-family model, see where the model
looked, and export reports.</p>
<p style="color:#7A1F1F"><b>{html.escape(octviewer.RESEARCH_ONLY)}.</b> The output of the model
is not a diagnosis and has not been validated for clinical use.</p>
<h3>Licences</h3>
<ul>
<li>octviewer: MIT licence.</li>
<li>{html.escape(MIRAGE_LICENCE)}</li>
<li>Demo model training data — {html.escape(KERMANY_LICENCE)}</li>
<li>Qt / PySide6: LGPLv3. PyTorch: BSD-3-Clause. timm: Apache-2.0. pydicom: MIT.</li>
<li>Heatmap colour maps inferno / viridis: CC0 (N. Smith, S. van der Walt).</li>
</ul>
<h3>Versions</h3>
<table cellspacing="4">{rows}</table>
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, default=str)
    return str(v)


def model_card_html(
    config: ModelConfig | None, sha256: str = "", path: Path | None = None, device: str = ""
) -> str:
    """The model card: what it is, classes, metrics, licence, provenance (and the bundle's .md)."""
    if config is None:
        return (
            "<h2>No model loaded</h2><p>Use <b>File &gt; Load model…</b> to choose a model bundle "
            "(<code>.safetensors</code>), or <b>Model &gt; Use MIRAGE weights…</b>.</p>"
        )
    parts = [f"<h2>{html.escape(config.name)} {html.escape(config.version)}</h2>"]
    if config.description:
        parts.append(f"<p>{html.escape(config.description)}</p>")
    facts = model_facts(config, sha256, path, device, with_name=False)
    parts.append(
        "<table cellspacing='4'>"
        + "".join(
            f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in facts
        )
        + "</table>"
    )
    if config.metrics:
        parts.append(
            "<h3>Metrics</h3><table cellspacing='4'>"
            + "".join(
                f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                for k, v in config.metrics.items()
            )
            + "</table>"
        )
    if config.provenance:
        parts.append(
            "<h3>Provenance</h3><table cellspacing='4'>"
            + "".join(
                f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(_fmt(v))}</code></td></tr>"
                for k, v in config.provenance.items()
            )
            + "</table>"
        )
    card = _bundle_card_text(path)
    if card:
        parts.append(
            "<h3>Model card</h3><pre style='white-space: pre-wrap'>" + html.escape(card) + "</pre>"
        )
    parts.append(f"<p style='color:#7A1F1F'><b>{html.escape(octviewer.RESEARCH_ONLY)}.</b></p>")
    return "\n".join(parts)


def _bundle_card_text(path: Path | None) -> str:
    """``<bundle>.md`` next to the bundle, else any ``resources/models/*.md`` for the default."""
    from octviewer.resources import resources_dir

    candidates: list[Path] = []
    if path is not None:
        candidates.append(path.with_suffix(".md"))
        if path.parent == resources_dir() / "models":
            candidates += sorted(path.parent.glob("*.md"))
    for c in candidates:
        try:
            if c.is_file():
                return c.read_text(encoding="utf-8")[:20000]
        except OSError:
            continue
    return ""


def mirage_html() -> str:
    return f"""
<h2>Using the MIRAGE foundation model</h2>
<p>MIRAGE (Morano et al., <i>npj Digital Medicine</i> 8:576, 2025) is a foundation model
pretrained on retinal OCT and SLO images. Its official weights are published by the authors:</p>
<ul>
<li>Hugging Face: <code>j-morano/MIRAGE-Base</code> and <code>j-morano/MIRAGE-Large</code>
(file <code>model.safetensors</code>)</li>
<li>GitHub releases of <code>j-morano/MIRAGE</code>: <code>MIRAGE-Base.pth</code>,
<code>MIRAGE-Large.pth</code></li>
</ul>
<p><b>Licence:</b> {html.escape(MIRAGE_LICENCE)}</p>
<p>The official files are <b>pretrained encoders without a classifier</b>: they must be
fine-tuned on labelled OCT B-scans before they can classify. Fine-tune with one command:</p>
<pre>{html.escape(TRAIN_COMMAND)}</pre>
<p>The result is a model bundle (<code>.safetensors</code>) that this app loads with
<b>File &gt; Load model…</b>. If you already have such a fine-tuned bundle, choose it with
the button below.</p>
<p style='color:#7A1F1F'><b>{html.escape(octviewer.RESEARCH_ONLY)}.</b></p>
"""


class HtmlDialog(QDialog):
    def __init__(
        self, title: str, body: str, parent: QWidget | None = None, extra_button: str | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(640, 560)
        lay = QVBoxLayout(self)
        text = QTextBrowser()
        text.setOpenExternalLinks(True)
        text.setHtml(body)
        lay.addWidget(text)
        self.browser = text
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.extra = None
        if extra_button:
            self.extra = buttons.addButton(extra_button, QDialogButtonBox.ButtonRole.AcceptRole)
            self.extra.clicked.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)


def error_box(parent: QWidget | None, title: str, message: str, details: str = "") -> QMessageBox:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(f"<b>{html.escape(title)}</b>")
    box.setInformativeText(message)
    box.setTextFormat(Qt.TextFormat.RichText)
    if details:
        box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    return box
