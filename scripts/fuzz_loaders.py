"""Fuzz the loaders: mutated model bundles and scans, each case in a memory-limited child.

    PYTHONPATH=. python scripts/fuzz_loaders.py --cases 2000 --seed 1 --out fuzz.json

Seeds (a tiny float32 and int8 bundle, PNG/JPEG/BMP/TIFF, a float32 TIFF, DICOM raw, RLE,
JPEG 2000, JPEG baseline, the test ``.vol``) are mutated by byte flips, truncation, zeroed
runs, structured edits of the safetensors header and the bundle configuration (hostile values:
NaN, 1e400, {}, [], nesting bombs, huge depths), NaN/Inf tensor bytes, DICOM attributes with
wrong types or counts, more frames declared than stored, and extreme float pixels.

``--shared DIR`` adds the real files of DIR (``dicom/``, ``vendor/``, ``ood/*.tif``) as seeds;
scans also get structured edits: a DICM preamble followed by megabytes of zeros, zeros appended,
``.vol`` header sizes (4 billion pixels...), TIFF IFD chains made cyclic or strips removed, bad
VRs in a DICOMDIR, a damaged file in a folder beside a good copy.

Each case runs in a worker process with ``RLIMIT_DATA`` (``--mem-gb``) and a timeout
(``--timeout``); a worker that hangs, dies or grew its peak memory is replaced. Outcomes: ``ok``
(loaded, finite results), ``refused`` (an octviewer error), ``last_resort`` (refused by a
catch-all handler, or a message naming a bare Python exception type), ``memory`` (a
MemoryError, or peak RSS grew by more than ``--mem-growth-mb``), ``foreign`` (another
exception escaped), ``nonfinite``, ``phantom_frames`` (more frames than the file holds),
``blank_frames`` (all-zero frames with no note), ``hang``, ``died``; ``slow`` counts cases over
``--slow`` seconds. The same ``--seed`` gives the same cases, so runs on two commits compare;
``--minutes`` gives both the same time budget instead.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import os
import random
import re
import resource
import select
import struct
import subprocess
import sys
import tempfile
import time
import traceback
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
LAST_RESORT = ("not what its format promises", "could not be read from disk",
               "The analysis failed (")  # fmt: skip
#: a message that names a Python exception type instead of the cause
BARE_TYPE = re.compile(r"\b(?:[A-Z][A-Za-z]*(?:Error|Exception)|StopIteration|Stream\w*Error_?)\b")
log = logging.getLogger("fuzz")


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


# --- the worker -------------------------------------------------------------------------------
def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    frame = tb[-1] if tb else None
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def run_case(case: dict, ref: object) -> dict:
    """One case, its outcome, time and peak memory growth (a blow-up is ``memory``)."""
    before, t0 = _peak_mb(), time.perf_counter()
    res = _run_case(case, ref)
    res["s"] = round(time.perf_counter() - t0, 3)
    res["grew_mb"] = round(_peak_mb() - before)
    return res


def _run_case(case: dict, ref: object) -> dict:
    import numpy as np

    import octviewer
    from octviewer.core.inference import AnalysisRequest
    from octviewer.errors import OCTViewerError

    bundle = case["seed"].startswith("bundle")
    try:
        if bundle:
            engine = octviewer.load_model(case["path"], device="cpu")
            scan = octviewer.load(ROOT / "tests/data/io/kermany/NORMAL-351109-1.jpeg")
        else:
            engine = ref
            scan = octviewer.load(case["path"])
        if case["frames"] and scan.n_frames > case["frames"]:
            return {"kind": "phantom_frames", "detail": f"{scan.n_frames}>{case['frames']}"}
        blank = [i for i, f in enumerate(scan.frames) if not f.any()]
        if blank and not any("blank" in n or "zero" in n for n in scan.metadata.notes):
            return {"kind": "blank_frames", "detail": f"{len(blank)}/{scan.n_frames}"}
        result = engine.analyze(scan, AnalysisRequest(frames=list(range(min(scan.n_frames, 3)))))
        for fr in result.frames:
            if not np.isfinite(fr.probabilities).all() or (
                fr.cam is not None and not np.isfinite(fr.cam).all()
            ):
                return {"kind": "nonfinite", "detail": case["op"]}
        return {"kind": "ok"}
    except OCTViewerError as exc:
        cause = exc.__cause__ or exc
        where = f"{type(cause).__name__}@{_where(cause)}"
        if any(isinstance(e, MemoryError) for e in _chain(exc)):
            return {"kind": "memory", "detail": where, "msg": str(exc)[:160]}
        if any(s in str(exc) for s in LAST_RESORT) or BARE_TYPE.search(str(exc)):
            return {"kind": "last_resort", "detail": where, "msg": str(exc)[:160]}
        return {"kind": "refused", "detail": type(exc).__name__, "msg": str(exc)[:160]}
    except MemoryError as exc:
        return {"kind": "memory", "detail": f"MemoryError@{_where(exc)}"}
    except RecursionError as exc:
        return {"kind": "foreign", "detail": f"RecursionError@{_where(exc)}"}
    except Exception as exc:
        return {"kind": "foreign", "detail": f"{type(exc).__name__}@{_where(exc)}"}


def worker(mem_gb: float) -> None:
    import resource

    limit = int(mem_gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    logging.disable(logging.CRITICAL)
    import warnings

    warnings.simplefilter("ignore")
    import octviewer

    ref = octviewer.load_model(sys.argv[sys.argv.index("--ref") + 1], device="cpu")
    out = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # library prints must not mix with results
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        res = run_case(json.loads(line), ref)
        out.write(json.dumps(res) + "\n")
        out.flush()


class Worker:
    def __init__(self, args: argparse.Namespace, ref: Path) -> None:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--mem-gb",
            str(args.mem_gb),
            "--ref",
            str(ref),
        ]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, env=os.environ)  # fmt: skip
        ready, _, _ = select.select([self.p.stdout], [], [], 300)  # start-up is not a case
        if not ready or self.p.stdout.readline().strip() != "ready":
            raise SystemExit("the fuzz worker did not start")

    def ask(self, case: dict, timeout: float) -> dict:
        try:
            self.p.stdin.write(json.dumps(case) + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            return {"kind": "died", "detail": f"rc {self.p.poll()}"}
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        line = self.p.stdout.readline() if ready else ""
        if not ready:
            return {"kind": "hang", "detail": f">{timeout:.0f}s"}
        if not line:
            return {"kind": "died", "detail": f"rc {self.p.wait()}"}
        return json.loads(line)

    def close(self) -> None:
        self.p.kill()
        self.p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--mem-gb", type=float, default=3.0)
    ap.add_argument("--mem-growth-mb", type=float, default=512.0)
    ap.add_argument("--slow", type=float, default=2.0)
    ap.add_argument("--minutes", type=float, help="run for this long instead of --cases")
    ap.add_argument("--shared", type=Path, help="also mutate the real files of this folder")
    ap.add_argument("--scans-only", action="store_true", help="no model bundle cases")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--ref")
    args = ap.parse_args()
    if args.worker:
        return worker(args.mem_gb)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    import warnings

    warnings.simplefilter("ignore")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="octfuzz") as tmp:
        work = Path(tmp)
        (work / "seeds").mkdir()
        seeds = make_seeds(work / "seeds")
        if args.shared:
            seeds.update(shared_seeds(args.shared))
        ref = seeds["bundle_float32"][0]
        if args.scans_only:
            seeds = {k: v for k, v in seeds.items() if not k.startswith("bundle")}
        rng = random.Random(args.seed)
        w = Worker(args, ref)
        rows = []
        t_start, i = time.time(), 0
        while (time.time() - t_start < args.minutes * 60) if args.minutes else i < args.cases:
            case = make_case(seeds, rng, work, i)
            res = w.ask(case, args.timeout)
            if res.get("grew_mb", 0) > args.mem_growth_mb and res["kind"] != "memory":
                res = {**res, "kind": "memory", "detail": f"+{res['grew_mb']} MB peak"}
            if res["kind"] in ("hang", "died", "memory"):
                w.close()
                w = Worker(args, ref)
            rows.append({**case, **res})
            _clean(Path(case["path"]))
            i += 1
            if i % 200 == 0:
                log.info("%d cases, %.0f s", i, time.time() - t0)
        w.close()
    summarise(rows, time.time() - t0, args)


def _clean(path: Path) -> None:
    """Cases can be tens of megabytes: remove each once it ran."""
    import shutil

    if path.parent.name.startswith("folder"):
        shutil.rmtree(path.parent, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def summarise(rows: list[dict], elapsed: float, args: argparse.Namespace) -> None:
    by_target = collections.defaultdict(collections.Counter)
    details = collections.Counter()
    for r in rows:
        target = "bundle" if r["seed"].startswith("bundle") else "scan"
        by_target[target][r["kind"]] += 1
        if r["kind"] not in ("ok", "refused"):
            details[(target, r["kind"], r.get("detail", ""), r["seed"], r["op"])] += 1
    slow = [r for r in rows if r.get("s", 0) > args.slow]
    out = [f"{len(rows)} cases in {elapsed:.0f} s (seed {args.seed})"]
    for target, counts in sorted(by_target.items()):
        out.append(f"  {target}: {sum(counts.values())} cases: " + ", ".join(
            f"{k} {v}" for k, v in counts.most_common()))  # fmt: skip
    out.append(f"  slow (> {args.slow:g} s, not hangs): {len(slow)}")
    for (target, kind, detail, seed, op), n in details.most_common(40):
        out.append(f"    {n:4d}  {target:6s} {kind:14s} {detail:40s} {seed} / {op}")
    for r in sorted(slow, key=lambda r: -r["s"])[:8]:
        out.append(f"    slow {r['s']:6.1f} s  {r['kind']:10s} {r['seed']} / {r['op']}")
    log.info("%s", "\n".join(out))
    if args.out:
        args.out.write_text(json.dumps({"elapsed_s": elapsed, "rows": rows}, indent=0))


if __name__ == "__main__":
    main()
