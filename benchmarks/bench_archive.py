"""Find + retrieve + analyse + send of a 49-frame Ophthalmic Tomography study against a local
Orthanc (Debian's, as the tests start it), per node kind, with the default model; then what
``dcmdump`` and Orthanc's REST API show of the filed PDF and SR (docs/ARCHIVE.md).

    python benchmarks/bench_archive.py [--runs 3] [--device cpu] [--dump FOLDER]

Needs ``orthanc orthanc-dicomweb`` (apt) and ../shared/data/kermany (49 real B-scans).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import archive_server as srv  # noqa: E402
import test_archive_orthanc as seeds  # noqa: E402

import octviewer  # noqa: E402
from octviewer.core.archive import StudyQuery, credentials, parse_node  # noqa: E402
from octviewer.core.archive.filing import objects_for  # noqa: E402
from octviewer.core.archive.service import Archive, clear_cache  # noqa: E402


def one_round(archive: Archive, engine, study_uid: str) -> dict[str, float]:
    from octviewer.core.inference import AnalysisRequest

    t = {}
    t0 = time.perf_counter()
    found = archive.find(
        StudyQuery(patient_id="QX-770012", date_from="20240401", date_to="20240401")
    )
    assert [s.study_uid for s in found] == [study_uid]
    t["find"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = archive.retrieve(study_uid)
    t["retrieve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    [path] = got.scan_files()
    scan = octviewer.load(path)
    assert scan.n_frames == 49
    result = engine.analyze(scan, AnalysisRequest(cam=False))
    idx = result.most_suspicious_frame()
    fr = result.frame(idx)
    if fr.assessable:
        result = result.with_cam(
            idx, engine.heatmap(scan, idx, fr.predicted_index), fr.predicted_index
        )
    t["analyse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    objs = objects_for(scan, result)
    t["pdf+sr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    archive.send(objs.datasets)
    t["send"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dump", type=Path, help="write the last filed PDF and SR here")
    args = ap.parse_args()
    if srv.missing_reason():
        print(srv.missing_reason())
        return 1
    frames = seeds.kermany_49()
    if frames is None:
        print("needs ../shared/data/kermany")
        return 1
    root = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    server = srv.start_orthanc(root)
    try:
        uid, folder = seeds.seed_study(root / "seed", frames, "20240401")
        for p in sorted(folder.glob("*.dcm")):
            server.upload(p)
        engine = octviewer.load_model(None, device=args.device)
        print(f"model {engine.identity} on {engine.device} ({engine.compute_dtype})")
        web = parse_node(server.dicomweb, name="dicomweb", username=srv.USER)
        credentials.remember(web, srv.PASSWORD)
        nodes = {
            "DICOMweb (QIDO/WADO-RS/STOW-RS)": web,
            "DIMSE C-GET (+C-FIND/C-STORE)": parse_node(server.dimse, name="dimse"),
            "DIMSE C-MOVE (+C-FIND/C-STORE)": parse_node(
                server.dimse, name="move", retrieve="c-move", move_port=server.move_port
            ),
        }
        one_round(Archive(web), engine, uid)  # warm-up: model and imports
        seeds.delete_filed(server, uid)
        rounds: dict[str, list[dict[str, float]]] = {label: [] for label in nodes}
        for _ in range(args.runs):  # the kinds interleaved, so a busy machine hits each alike
            for label, node in nodes.items():
                clear_cache()
                rounds[label].append(one_round(Archive(node), engine, uid))
                seeds.delete_filed(server, uid)
        for label, rs in rounds.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            print(f"{label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in med.items()))
            totals = ", ".join(f"{r['total']:.1f}" for r in rs)
            print(f"    totals: {totals} s")
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            one_round(Archive(web), engine, uid)
            for modality, ds in seeds.filed_objects(server, uid).items():
                ds.save_as(args.dump / f"{modality}.dcm", enforce_file_format=True)
            study = server.rest("POST", "/tools/lookup", data=uid).json()[0]["ID"]
            import json

            series = server.rest("GET", f"/studies/{study}/series").json()
            (args.dump / "orthanc-series.json").write_text(
                json.dumps(
                    [
                        {"MainDicomTags": s["MainDicomTags"], "Instances": len(s["Instances"])}
                        for s in series
                    ],
                    indent=1,
                )
            )
            for s in series:
                if s["MainDicomTags"].get("Modality") == "DOC":
                    r = server.rest("GET", f"/instances/{s['Instances'][0]}/pdf")
                    print(f"Orthanc /instances/ID/pdf: HTTP {r.status_code}, "
                          f"{r.headers.get('Content-Type')}, {len(r.content)} bytes")  # fmt: skip
            print(f"dumped to {args.dump}")
    finally:
        server.stop()
        clear_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
