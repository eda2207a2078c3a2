"""Vendor formats: Heidelberg .vol through eyepy; .E2E / .fda refused clearly where oct-converter fails."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import io_factory as fac
import numpy as np
import pytest

from octviewer import Laterality, Modality
from octviewer.core.io import MissingReaderError, load
from octviewer.errors import MissingDependencyError, UnsupportedFormatError

VOL = fac.IO_DATA / "vendor" / "Willis_B_716_0.vol"


def test_heidelberg_vol_with_slo_localizer() -> None:
    scan = load(VOL)
    assert scan.frames.shape == (1, 496, 768) and scan.frames.dtype == np.uint8
    assert scan.frames.std() > 10  # a real B-scan, not a blank
    m = scan.metadata
    assert m.format == "Heidelberg VOL" and m.modality is Modality.OCT_BSCAN
    assert m.laterality is Laterality.RIGHT and m.acquisition_date == dt.date(2017, 1, 11)
    assert m.spacing.col == pytest.approx(0.011820577) and m.spacing.row == pytest.approx(
        0.00387167
    )
    assert m.manufacturer == "Heidelberg Engineering"
    # the SLO is the localizer; the single B-scan runs across its middle, edge to edge
    assert scan.localizer is not None and scan.localizer.image.shape == (768, 768)
    np.testing.assert_allclose(scan.localizer.positions, [[0, 384, 768, 384]], atol=0.5)
    assert scan.identity.patient_id and scan.identity.patient_id not in repr(m)


def test_vendor_files_are_sniffed_not_trusted_by_suffix(tmp_path: Path) -> None:
    renamed = tmp_path / "export.bin"
    renamed.write_bytes(VOL.read_bytes())
    assert load(renamed).metadata.format == "Heidelberg VOL"


@pytest.mark.parametrize(
    ("name", "limitation"), [("e2e_minimized.E2E", "E2E"), ("fda_minimized.fda", "NumPy 2")]
)
def test_real_e2e_and_fda_fail_clearly(shared_data: Path, name: str, limitation: str) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        load(shared_data / "vendor" / name)
    message = str(info.value)
    assert "oct-converter" in message and limitation in message and "DICOM" in message


def test_missing_oct_converter_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scan.E2E"
    path.write_bytes(b"CMDb" + bytes(200))
    monkeypatch.setitem(sys.modules, "oct_converter", None)
    with pytest.raises(MissingReaderError) as info:
        load(path)
    assert isinstance(info.value, MissingDependencyError)
    assert 'pip install "octviewer[vendor]"' in str(info.value) and "oct-converter" in str(
        info.value
    )


def test_importing_readers_loads_no_heavy_decoder() -> None:
    code = """
        import sys
        import octviewer.core.io
        import octviewer.core.io.dicom, octviewer.core.io.images, octviewer.core.io.series
        import octviewer.core.io.vendor
        heavy = [m for m in ("pydicom", "pylibjpeg", "openjpeg", "eyepy", "oct_converter", "cv2",
                             "torch", "PySide6") if m in sys.modules]
        assert not heavy, heavy
    """
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
