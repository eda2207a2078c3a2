"""The case stream of ``scripts/fuzz_loaders.py``: its seed files and the mutations that make
a case of one. :func:`make_case` draws everything from the ``random.Random`` it is given, so
the same ``--seed`` gives the same cases.

Seeds (a tiny float32 and int8 bundle, PNG/JPEG/BMP/TIFF, a float32 TIFF, DICOM raw, RLE,
JPEG 2000, JPEG baseline, the test ``.vol``; with ``--shared`` the real files of the shared
data folder) are mutated by byte flips, truncation, zeroed runs, structured edits of the
safetensors header and the bundle configuration (hostile values), NaN/Inf tensor bytes, DICOM
attributes with wrong types or counts, more frames declared than stored, extreme float pixels,
and edits aimed at one reader's header (``.vol`` sizes, TIFF IFD chains, DICOMDIR VRs).
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = [
    None,
    {},
    [],
    "x",
    -1,
    0,
    1,
    2**70,
    "RAW:1e400",
    "RAW:NaN",
    "RAW:-1e400",
    [1e9, 1e9],
    True,
    "__class__",
    "a" * 5000,
    [[[[]]]],
    {"a": {}},
    1e6,
    10**6,
    0.5,
    [0],
]


# --- seeds ------------------------------------------------------------------------------------
def make_seeds(d: Path) -> dict[str, tuple[Path, int]]:
    """Seed files -> (path, frames it really holds)."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT / "tests"))
    import io_factory as f
    from helpers_models import make_tiny_bundle

    seeds: dict[str, tuple[Path, int]] = {}
    for dt in ("float32", "int8"):
        seeds[f"bundle_{dt}"] = (make_tiny_bundle(d / f"b_{dt}.safetensors", dtype=dt), 0)
    rng = np.random.default_rng(0)
    img = (rng.random((64, 96)) * 255).astype(np.uint8)
    for ext, fmt in (("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP")):
        Image.fromarray(img).save(d / f"i.{ext}", format=fmt)
        seeds[f"image_{ext}"] = (d / f"i.{ext}", 1)
    Image.fromarray(img.astype(np.uint16) * 200).save(d / "i16.png")
    seeds["image_png16"] = (d / "i16.png", 1)
    pages = [Image.fromarray(np.roll(img, k)) for k in range(3)]
    pages[0].save(d / "v.tif", save_all=True, append_images=pages[1:])
    seeds["tiff_volume"] = (d / "v.tif", 3)
    Image.fromarray(img.astype(np.float32)).save(d / "f.tif")
    seeds["tiff_float"] = (d / "f.tif", 1)
    vol = np.stack([np.roll(img[:64, :64], k, axis=1) for k in range(3)])
    for syntax in ("raw", "rle", "jpeg2000", "jpeg-baseline"):
        ds = f.opt_dataset(vol.copy())
        if syntax != "raw":
            ds = f.compress(ds, syntax)
        seeds[f"dicom_{syntax}"] = (f.write(ds, d / f"d_{syntax}.dcm"), 3)
    vol_file = ROOT / "tests/data/io/vendor/Willis_B_716_0.vol"
    if vol_file.is_file():
        seeds["vol"] = (vol_file, 0)
    return seeds


def shared_seeds(shared: Path) -> dict[str, tuple[Path, int]]:
    """The real files of the shared data folder (frame counts unknown: 0)."""
    files = [*sorted((shared / "dicom").glob("*")), *sorted((shared / "vendor").glob("*"))]
    files += sorted((shared / "ood").glob("*.tif"))
    out = {}
    for p in files:
        kind = "dicomdir" if "DICOMDIR" in p.name else p.suffix.lower().lstrip(".")
        kind = {"dcm": "dicom", "tif": "tiff", "fds": "fda"}.get(kind, kind)
        out[f"{kind}_shared_{p.stem[:24]}"] = (p, 0)
    return out


# --- mutations --------------------------------------------------------------------------------
def _raw_json(value: object) -> str:
    text = json.dumps(value)
    for tok in ("1e400", "-1e400", "NaN"):
        text = text.replace(f'"RAW:{tok}"', tok)
    return text


def _split_bundle(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join_bundle(header_text: str, body: bytes) -> bytes:
    raw = header_text.encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    op = rng.choice(["flip", "flip", "truncate", "zero", "insert"])
    if op == "flip":
        for _ in range(rng.randint(1, 12)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == "truncate":
        b = b[: rng.randrange(1, len(b))]
    elif op == "zero":
        i = rng.randrange(len(b))
        b[i : i + rng.randint(1, 4096)] = bytes(min(len(b) - i, 4096))
    else:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(b)


def mutate_bundle(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    header, body = _split_bundle(data)
    meta = header.get("__metadata__", {})
    config = json.loads(meta["octviewer.config"])
    names = [k for k in header if k != "__metadata__"]
    op = rng.choice(["bytes", "tensor", "tensor", "config", "config", "config", "arch",
                     "arch", "nest", "nan", "scale", "drop"])  # fmt: skip
    if op == "bytes":
        return op, mutate_bytes(data, rng)
    if op == "tensor":
        info = header[rng.choice(names)]
        key = rng.choice(["data_offsets", "shape", "dtype"])
        info[key] = rng.choice(HOSTILE) if rng.random() < 0.6 else [rng.choice(HOSTILE)] * 2
    elif op == "scale":
        scales = [k for k in names if k.startswith("__int8_scale__.")] or names
        header[rng.choice(scales)]["shape"] = rng.choice([[], {}, [0], [1e400], None, [2**40]])
    elif op == "config":
        key = rng.choice([*config, "preprocess.size", "preprocess.mean", "preprocess.std"])
        if key.startswith("preprocess."):
            config["preprocess"][key.split(".")[1]] = rng.choice(HOSTILE)
        else:
            config[key] = rng.choice(HOSTILE)
    elif op == "arch":
        key = rng.choice(["embed_dim", "depth", "num_heads", "img_size", "patch_size",
                          "mlp_ratio", "qkv_bias", "drop_rate", "class_token"])  # fmt: skip
        config["arch_kwargs"][key] = rng.choice(HOSTILE)
    elif op == "nest":
        bomb = "[" * rng.choice([1000, 100000]) + "]" * rng.choice([0, 1])
        if rng.random() < 0.5:
            return op, _join_bundle('{"__metadata__": {}, "x": ' + bomb + "}", body)
        meta["octviewer.config"] = '{"a": ' + bomb + "}"
        return op, _join_bundle(json.dumps(header), body)
    elif op == "nan":
        b = bytearray(body)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(0, len(b) - 4) & ~3
            b[i : i + 4] = struct.pack("<f", rng.choice([float("nan"), float("inf")]))
        body = bytes(b)
    else:  # drop a config field
        key = rng.choice([*config, "preprocess.size"])
        if key == "preprocess.size":
            config["preprocess"].pop("size", None)
        else:
            config.pop(key, None)
    meta["octviewer.config"] = _raw_json(config)
    return op, _join_bundle(_raw_json(header), body)


DICOM_ATTRS = ["Rows", "Columns", "NumberOfFrames", "BitsAllocated", "BitsStored",
               "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation",
               "InstanceNumber", "ImageLaterality", "SOPClassUID"]  # fmt: skip
DICOM_VALUES = [("US", 0), ("US", 65535), ("IS", "NaN"), ("IS", "1e400"), ("DS", "-3"),
                ("LO", "abc"), ("IS", ["2", "3"]), ("SQ", []), ("UN", b"\x01\x02\x03"),
                ("CS", ""), ("IS", "99999999"), ("UI", "1.2.abc")]  # fmt: skip


def _put(ds: object, tag: int, vr: str, value: object) -> None:
    """Set an element, as raw bytes under VR UN when pydicom will not hold the value."""
    from pydicom.dataelem import DataElement

    try:
        ds[tag] = DataElement(tag, vr, value)  # type: ignore[index]
    except (ValueError, TypeError, OverflowError):
        raw = value if isinstance(value, bytes) else str(value).encode()
        ds[tag] = DataElement(tag, "UN", raw + b" " * (len(raw) % 2))  # type: ignore[index]


def mutate_dicom(path: Path, rng: random.Random, frames: int) -> tuple[str, bytes, int]:
    import pydicom
    from pydicom.datadict import tag_for_keyword

    ds = pydicom.dcmread(path)
    op = rng.choice(["attr", "attr", "frames", "ts", "spacing"])
    if op == "attr":
        kw = rng.choice(DICOM_ATTRS)
        _put(ds, tag_for_keyword(kw), *rng.choice(DICOM_VALUES))
    elif op == "frames":
        ds.NumberOfFrames = frames + rng.randint(1, 9)
    elif op == "ts":
        ds.file_meta.TransferSyntaxUID = rng.choice(["1.2.3", "x", "1.2.840.10008.1.2.4.50",
                                                     "1.2.840.10008.1.2.5"])  # fmt: skip
    else:
        shared = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        _put(shared, 0x00280030, *rng.choice(DICOM_VALUES))
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=False)
    except Exception:  # pydicom refuses to write some values: fall back to bytes
        return "bytes", mutate_bytes(path.read_bytes(), rng), frames
    return op, out.getvalue(), frames


def mutate_float_tiff(rng: random.Random) -> bytes:
    import numpy as np
    from PIL import Image

    a = np.random.default_rng(rng.randrange(1 << 30)).random((48, 64)).astype(np.float32)
    for _ in range(rng.randint(1, 4)):
        a[rng.randrange(48), rng.randrange(64)] = rng.choice(
            [3.4e38, -3.4e38, np.nan, np.inf, -np.inf]
        )
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="TIFF")
    return buf.getvalue()


VOL_FIELDS = {"size_x": 12, "n_bscans": 16, "size_y": 20, "size_x_slo": 48, "size_y_slo": 52,
              "bscan_hdr_size": 100}  # fmt: skip
HUGE = [0, 1, 3, 65535, 1 << 16, 1 << 20, (1 << 31) - 1, (1 << 32) - 1, 4_000_000_000]


def mutate_structured(name: str, data: bytes, rng: random.Random) -> tuple[str, bytes] | None:
    """An edit aimed at one reader's header; None when ``name`` has none."""
    b = bytearray(data)
    zeros = bytes(rng.choice([1 << 20, 16 << 20, 64 << 20]))
    if name.startswith(("dicom", "dicomdir")) and rng.random() < 0.3:
        if rng.random() < 0.5:
            return "dicm_zeros", bytes(128) + b"DICM" + zeros
        return "zero_tail", data + zeros
    if name.startswith("vol"):
        field = rng.choice(list(VOL_FIELDS))
        b[VOL_FIELDS[field] : VOL_FIELDS[field] + 4] = struct.pack("<I", rng.choice(HUGE))
        return f"vol_{field}", bytes(b)
    if name.startswith("tiff") and b[:4] == b"II*\x00":
        ifds = _tiff_ifds(b)
        if not ifds:
            return None
        op = rng.choice(["ifd_cycle", "ifd_self", "strips_zero"])
        at, entries, nxt = ifds[rng.randrange(len(ifds))]
        if op == "ifd_cycle":  # the last page points back to an earlier one
            b[ifds[-1][2] : ifds[-1][2] + 4] = struct.pack("<I", ifds[0][0])
        elif op == "ifd_self":
            b[nxt : nxt + 4] = struct.pack("<I", at)
        else:  # StripOffsets / StripByteCounts of a page say "not written"
            for tag, pos in entries:
                if tag in (273, 279):
                    b[pos + 8 : pos + 12] = bytes(4)
        return op, bytes(b)
    if name.startswith("dicomdir"):
        spots = [m.start() for m in re.finditer(rb"CS|UL|US|IS", data[132:])]
        for at in rng.sample(spots, min(len(spots), rng.randint(1, 3))):
            b[132 + at : 134 + at] = rng.choice([b"ZZ", b"\x00\x00", b"SQ", b"OB", b"xx"])
        return "dicomdir_vr", bytes(b)
    return None


def _tiff_ifds(b: bytearray) -> list[tuple[int, list[tuple[int, int]], int]]:
    """(offset, [(tag, entry offset)], offset of the next-IFD pointer) of a little-endian TIFF."""
    out, at, seen = [], struct.unpack("<I", b[4:8])[0], set()
    while 8 <= at < len(b) - 2 and at not in seen and len(out) < 64:
        seen.add(at)
        n = struct.unpack("<H", b[at : at + 2])[0]
        nxt = at + 2 + 12 * n
        if nxt + 4 > len(b):
            break
        tags = [(struct.unpack("<H", b[at + 2 + 12 * k : at + 4 + 12 * k])[0], at + 2 + 12 * k)
                for k in range(n)]  # fmt: skip
        out.append((at, tags, nxt))
        at = struct.unpack("<I", b[nxt : nxt + 4])[0]
    return out


def make_case(seeds: dict, rng: random.Random, work: Path, i: int) -> dict:
    bundles = sorted(k for k in seeds if k.startswith("bundle"))
    scans = sorted(set(seeds) - set(bundles))
    name = rng.choice(bundles if bundles and rng.random() < 0.5 else scans)
    path, frames = seeds[name]
    data = path.read_bytes()
    if name.startswith("bundle"):
        op, out = mutate_bundle(data, rng)
    elif name.startswith("dicom") and rng.random() < 0.6:
        try:
            op, out, frames = mutate_dicom(path, rng, frames)
        except Exception:  # pydicom would not hold or write the value: mutate the bytes
            op, out = "bytes", mutate_bytes(data, rng)
    elif name == "tiff_float" and rng.random() < 0.5:
        op, out = "extreme_pixels", mutate_float_tiff(rng)
    elif (edit := mutate_structured(name, data, rng) if rng.random() < 0.5 else None) is not None:
        op, out = edit
    else:
        op, out = "bytes", mutate_bytes(data, rng)
    target = work / f"case{i}{path.suffix}"
    target.write_bytes(out)
    in_folder = name.startswith(("dicom_", "tiff", "image"))
    if in_folder and rng.random() < 0.15:  # inside a folder with a good copy
        folder = work / f"folder{i}"
        folder.mkdir()
        target = target.replace(folder / f"a{path.suffix}")
        (folder / f"b{path.suffix}").write_bytes(data)
        name, frames = name + "+folder", 2 * frames
    return {"seed": name, "op": op, "path": str(target), "frames": frames}
