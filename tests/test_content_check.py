"""The "is this a B-scan at all?" content check (octviewer/core/content.py) and its use by load().

Positives: generated layered bands with speckle, the real Kermany / Spectralis .vol / Topcon
B-scans of tests/data and a Zeiss Cirrus optic-nerve-head B-scan (tests/data/content, MIT).
Negatives: generated SLO-like fields with vessel trees and OCT-A-like capillary networks, the
real MIT-licensed Heidelberg IR fundus and ANTERION photos, the .vol file's own SLO. The whole
development set in ../shared/data is checked when it is present.
"""

from __future__ import annotations

from pathlib import Path

import io_factory as fac
import numpy as np
import pytest
from helpers_models import make_tiny_bundle
from PIL import Image, ImageDraw

from octviewer import Modality, load
from octviewer.core.content import ContentVerdict, check_frame, check_frames, sample_indices
from octviewer.core.inference import AnalysisRequest
from octviewer.core.io import judge_content
from octviewer.core.results import ResultFlag
from octviewer.core.scan import Scan, ScanMetadata

DATA = Path(__file__).resolve().parent / "data"
CIRRUS = DATA / "content" / "cirrus-onh-bscan-im0100.png"
KERMANY = sorted({p.name: p for p in DATA.glob("*/**/*.jpeg")}.values())
VOL = DATA / "io" / "vendor" / "Willis_B_716_0.vol"


# --- generators ---------------------------------------------------------------------------
def bscan_like(
    rows: int = 496, cols: int = 768, *, seed: int = 0, tilt: float = 0.0, pad: bool = False
) -> np.ndarray:
    """A synthetic B-scan: speckled dark vitreous, a curved layered retina, fading choroid."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, cols)
    surface = rows * (0.3 + 0.05 * x**2 + tilt * x) + 25 * np.exp(-(x**2) / 0.01)  # fovea dip
    depth = np.arange(rows)[:, None] - surface[None, :]
    tissue = np.zeros((rows, cols))
    for top, thick, level in ((0, 18, 0.8), (18, 30, 0.35), (48, 20, 0.55), (68, 25, 0.25)):
        tissue += level * ((depth >= top) & (depth < top + thick))
    tissue += 1.0 * ((depth >= 93) & (depth < 105))  # RPE
    tissue += 0.45 * np.exp(-(depth - 105) / 60.0) * (depth >= 105)  # choroid, fading
    speckle = rng.gamma(2.0, 0.5, size=(rows, cols))
    img = 0.05 + tissue * speckle + 0.04 * rng.random((rows, cols))
    out = np.clip(img / img.max() * 255 * 1.3, 0, 255).astype(np.uint8)
    if pad:  # white wedge of a rotated Kermany image
        out[np.arange(rows)[:, None] < (0.25 * rows - 0.2 * np.arange(cols)[None, :] / 2)] = 255
    return out


def _vessel_tree(draw: ImageDraw.ImageDraw, rng: np.random.Generator, start, fill, width) -> None:
    stack = [(start, rng.uniform(0, 2 * np.pi), width)]
    while stack:
        (x, y), angle, w = stack.pop()
        for _ in range(int(rng.integers(15, 30))):
            angle += rng.normal(0, 0.15)
            nx, ny = x + 12 * np.cos(angle), y + 12 * np.sin(angle)
            draw.line([(x, y), (nx, ny)], fill=fill, width=max(1, int(w)))
            x, y = nx, ny
        if w > 1.5 and len(stack) < 40:
            stack += [((x, y), angle + 0.5, w * 0.7), ((x, y), angle - 0.5, w * 0.7)]


def slo_like(size: int = 512, *, seed: int = 0) -> np.ndarray:
    """A synthetic infrared SLO: grey vignetted field, bright disc, dark vessels in all directions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    field = 150 - 120 * (xx**2 + yy**2) + rng.normal(0, 6, (size, size))
    im = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    disc = (int(size * 0.8), int(size * 0.5))
    r = size // 14
    draw.ellipse([disc[0] - r, disc[1] - r, disc[0] + r, disc[1] + r], fill=215)
    for k in range(6):
        _vessel_tree(draw, np.random.default_rng(seed * 10 + k), disc, 60, 6)
    return np.asarray(im)


def octa_like(size: int = 320, *, seed: int = 0) -> np.ndarray:
    """A synthetic OCT-A en-face image: bright capillary network on black, dark fovea."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", (size, size), 10)
    draw = ImageDraw.Draw(im)
    for _ in range(60):
        start = tuple(rng.uniform(0, size, 2))
        _vessel_tree(draw, rng, start, int(rng.integers(150, 255)), 2)
    c, r = size // 2, size // 10
    draw.ellipse([c - r, c - r, c + r, c + r], fill=10)
    return np.asarray(im)


# --- the check on pixels ------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame",
    [
        bscan_like(),
        bscan_like(512, 512, seed=1, tilt=0.1),
        bscan_like(seed=2, pad=True),
        bscan_like(1024, 200, seed=3),  # Cirrus-like: narrow and deep
        (bscan_like(650, 512, seed=4).astype(np.uint16) * 257),  # 16-bit
    ],
    ids=["spectralis-like", "tilted", "white-padding", "narrow-deep", "uint16"],
)
def test_generated_bscans_pass(frame: np.ndarray) -> None:
    v = check_frame(frame)
    assert v.is_bscan and v.kind == "B-scan" and v.score > 0, v
    assert {"skew", "polarity", "lateral", "left_skew", "right_lateral"} <= set(v.features)


@pytest.mark.parametrize(
    ("frame", "because"),
    [
        (slo_like(), "brightness"),
        (slo_like(768, seed=5), "brightness"),
        (octa_like(), "sideways"),
        (octa_like(seed=7), "sideways"),
        (slo_like().T.copy(), "brightness"),  # orientation does not matter for en-face
    ],
    ids=["slo", "slo-768", "octa", "octa-2", "slo-transposed"],
)
def test_generated_en_face_images_fail(frame: np.ndarray, because: str) -> None:
    v = check_frame(frame)
    assert not v.is_bscan and v.kind == "en-face" and v.score < 0, v
    assert v.reason.startswith("not an OCT B-scan") and because in v.reason


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    rows = right.shape[0]
    left = np.asarray(Image.fromarray(left).resize((rows, rows)))
    return np.concatenate([left, np.zeros((rows, 16), np.uint8), right], axis=1)


def test_screen_export_with_an_slo_beside_the_bscan_is_a_composite() -> None:
    v = check_frame(_side_by_side(slo_like(seed=2), bscan_like(seed=2)))
    assert not v.is_bscan and v.kind == "composite" and "right side" in v.reason, v
    # the words are true of a single photograph too: it is never called "a composite"
    assert "composite" not in v.reason
    vol = load(VOL)  # the real SLO beside its real B-scan, as a viewer's screen shows them
    real = check_frame(_side_by_side(vol.localizer.image, vol.frames[0]))
    assert not real.is_bscan and real.kind == "composite", real
    assert check_frame(bscan_like(seed=2)[:, :300]).is_bscan  # a part of a B-scan is one


def test_upside_down_bscan_is_still_a_bscan() -> None:
    assert check_frame(bscan_like(seed=8)[::-1]).is_bscan


def test_colour_frames_are_judged_on_their_luminance() -> None:
    grey = slo_like(seed=9)
    rgb = np.stack([grey, (grey * 0.6).astype(np.uint8), (grey * 0.3).astype(np.uint8)], -1)
    assert not check_frame(rgb).is_bscan
    assert check_frame(np.repeat(bscan_like(seed=9)[..., None], 3, -1)).is_bscan


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (np.zeros((496, 512), np.uint8), "blank"),
        (np.full((496, 512), 4000, np.uint16), "blank"),
        (np.full((100, 100), 0.5, np.float32), "blank"),
        (np.random.default_rng(0).integers(0, 255, (20, 300), dtype=np.uint8), "too small"),
        (np.zeros((496, 1), np.uint8), "blank"),  # tiny, but one value: blank, not "too small"
    ],
)
def test_blank_and_tiny_frames_are_not_bscans(frame: np.ndarray, kind: str) -> None:
    """A clinician expects no class on an image that shows nothing: "cannot tell" is "no"."""
    v = check_frame(frame)
    assert not v.is_bscan and v.kind == kind and v.features == {}
    assert ("blank" in v.reason) if kind == "blank" else ("too small" in v.reason)


def test_noise_is_not_a_bscan() -> None:
    noise = np.random.default_rng(1).integers(0, 255, (496, 512), dtype=np.uint8)
    assert not check_frame(noise).is_bscan


def test_real_bscans_in_tests_data_pass() -> None:
    assert len(KERMANY) >= 10
    for path in [*KERMANY, CIRRUS]:
        v = check_frame(np.asarray(Image.open(path).convert("L")))
        assert v.is_bscan, (path.name, v)


def test_real_photographs_and_slo_fail() -> None:
    for name in ("example-dcms__fundus.dcm", "cataract__eye.dcm"):
        scan = load(DATA / "io" / "dicom" / name)
        v = check_frames(scan.frames)
        assert not v.is_bscan and v.kind == "en-face", (name, v)
    vol = load(VOL)
    assert check_frames(vol.frames).is_bscan
    assert not check_frame(vol.localizer.image).is_bscan  # the SLO that comes with it


def test_volume_is_judged_on_a_few_middle_frames() -> None:
    assert sample_indices(1) == [0]
    assert sample_indices(3) == [0, 1, 2]
    assert sample_indices(97) == [24, 48, 73]
    oct_stack = np.stack([bscan_like(256, 256, seed=s) for s in range(9)])
    assert check_frames(oct_stack).is_bscan
    mixed = oct_stack.copy()
    mixed[2] = slo_like(256)  # one odd frame out of the three sampled does not decide
    assert check_frames(mixed).is_bscan
    mixed[4] = slo_like(256, seed=1)
    assert not check_frames(mixed).is_bscan
    assert not check_frames(np.zeros((0, 64, 64), np.uint8)).is_bscan


def test_verdict_is_a_typed_dataclass() -> None:
    v = check_frame(bscan_like())
    assert isinstance(v, ContentVerdict) and isinstance(v.score, float)
    assert all(isinstance(x, float) for x in v.features.values())


# --- load() sets the modality from the pixels -------------------------------------------
def test_grey_en_face_png_loads_as_en_face_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "slo.png"
    Image.fromarray(slo_like(seed=3)).save(path)
    scan = load(path)
    assert scan.metadata.modality is Modality.EN_FACE and not scan.is_oct
    assert any(n.startswith("Not an OCT B-scan") for n in scan.metadata.notes)
    octa = tmp_path / "octa.tif"
    Image.fromarray(octa_like(seed=3)).save(octa)
    assert load(octa).metadata.modality is Modality.EN_FACE


def test_bscan_png_stays_oct_without_a_note(tmp_path: Path) -> None:
    path = tmp_path / "b.png"
    Image.fromarray(bscan_like(seed=5)).save(path)
    scan = load(path)
    assert scan.metadata.modality is Modality.OCT_BSCAN and scan.metadata.notes == ()


def test_blank_png_is_not_oct(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.fromarray(np.zeros((496, 512), np.uint8)).save(path)
    scan = load(path)
    assert scan.metadata.modality is Modality.UNKNOWN
    assert any("blank" in n for n in scan.metadata.notes)


def test_dicom_oct_metadata_does_not_override_en_face_pixels(tmp_path: Path) -> None:
    """An OPT object (metadata: OCT) whose frames are SLO-like is not analysed as OCT."""
    frames = np.stack([slo_like(256, seed=s) for s in range(3)])
    scan = load(fac.write(fac.opt_dataset(frames), tmp_path / "odd.dcm"))
    assert scan.metadata.modality is Modality.EN_FACE
    real = load(fac.write(fac.opt_dataset(fac.kermany_stack()), tmp_path / "real.dcm"))
    assert real.metadata.modality is Modality.OCT_VOLUME


def test_bscan_pixels_do_not_make_a_photograph_oct() -> None:
    meta = ScanMetadata(
        source_paths=(Path("x.png"),), format="PNG", modality=Modality.FUNDUS, was_color=True
    )
    scan = judge_content(Scan(frames=bscan_like(seed=6), metadata=meta))
    assert scan.metadata.modality is Modality.FUNDUS
    assert "look like an OCT B-scan, but it is a colour image" in scan.metadata.notes[-1]


def test_engine_flags_not_oct_for_a_loaded_en_face_image(tmp_path: Path) -> None:
    from octviewer.core.engine import Engine

    path = tmp_path / "slo.png"
    Image.fromarray(slo_like(seed=4)).save(path)
    engine = Engine(make_tiny_bundle(tmp_path / "tiny.safetensors"), device="cpu")
    en_face = engine.analyze(load(path), AnalysisRequest(cam=False)).frames[0]
    assert ResultFlag.NOT_OCT in en_face.flags
    Image.fromarray(bscan_like(seed=4)).save(tmp_path / "b.png")
    bscan = engine.analyze(load(tmp_path / "b.png"), AnalysisRequest(cam=False)).frames[0]
    assert ResultFlag.NOT_OCT not in bscan.flags


# --- the development set, when ../shared/data is present ----------------------------------
SHARED_EXPECTED = {
    "ood/slo-ir-macula_768.png": False,
    "ood/octa-enface-angio3superf.tif": False,
    "ood/fundus-colour-DRIVE_22.png": False,
    "ood/bioptigen-bscan-test.tif": True,
    "ood/cirrus-onh-bscan-im0100.png": True,
    "ood/edi-bscan-choroidalyzer-image1.png": True,
    **{f"ood/onh-radial-OCT-0_{i}.png": True for i in range(9)},
    "dicom/example-dcms__fundus.dcm": False,
    "dicom/cataract__eye.dcm": False,
    "dicom/topcon_bscan_opt.dcm": True,
    "vendor/Willis_B_716_0.vol": True,
    "vendor/TEST_T_2707_0.vol": True,
    "vendor/TEST_T_2710_0.vol": True,
}


def test_development_set_verdicts(shared_data: Path) -> None:
    wrong = []
    for rel, expected in SHARED_EXPECTED.items():
        scan = load(shared_data / rel)
        if check_frames(scan.frames).is_bscan != expected or scan.is_oct != expected:
            wrong.append(rel)
        if scan.localizer is not None and check_frame(scan.localizer.image).is_bscan:
            wrong.append(rel + " (SLO)")
    assert wrong == []


def test_no_kermany_image_is_rejected(shared_data: Path) -> None:
    paths = sorted((shared_data / "kermany").glob("*/*.jpeg"))
    assert len(paths) == 648
    rejected = [p.name for p in paths if not check_frame(np.asarray(Image.open(p))).is_bscan]
    assert rejected == []
