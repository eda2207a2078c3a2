#!/usr/bin/env bash
# Measure each real-data variation group (training/variation.py) by what it does across sources:
# fine-tune ensemble member 1 of the bundled 2.x model (trained on Kermany folds 2-4) on the
# same Kermany folds for a few epochs, with no extra group, all groups, and all but one, and
# test each on every OCTDL B-scan (another device and hospital, never seen) and on the Kermany
# fold-1 patients. Results: runs/ablation/summary.tsv (docs/TRAINING.md quotes them).
#
# Usage: scripts/ablate_variation.sh [EPOCHS]   (about 2.5 min per run on one core)
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(pwd)/.venv/bin:$PATH"
EPOCHS=${1:-3}
JOBS=${JOBS:-2}
OUT=runs/ablation
mkdir -p "$OUT"
octviewer-train sources kermany=../shared/data/kermany octdl=../shared/data/octdl \
    --output "$OUT/sources.csv"
{ head -1 "$OUT/sources.csv"; grep ',kermany$' "$OUT/sources.csv"; } > "$OUT/kermany.csv"
{ head -1 "$OUT/sources.csv"; grep ',octdl$' "$OUT/sources.csv" | grep -v ',OTHER,'; } > "$OUT/octdl.csv"
INIT="bundle:resources/models/octviewer-demo-kermany.safetensors@1"
declare -A RUNS=([none]="" [all]="display,speckle,contrast,zoom,overlay"
    [no-display]="speckle,contrast,zoom,overlay" [no-speckle]="display,contrast,zoom,overlay"
    [no-contrast]="display,speckle,zoom,overlay" [no-zoom]="display,speckle,contrast,overlay"
    [no-overlay]="display,speckle,contrast,zoom")
run() {
    local name=$1 extra=$2
    local opt=()
    [ -n "$extra" ] && opt=(--augment-extra "$extra")
    OMP_NUM_THREADS=1 octviewer-train --data "$OUT/kermany.csv" --test "$OUT/octdl.csv" \
        --classes CNV,DME,DRUSEN,NORMAL --architecture timm/resnet18 --img-size 224 \
        --init "$INIT" --epochs "$EPOCHS" --lr 3e-4 --weight-decay 0.05 --seed 1 \
        --split-seed 0 --folds 4 --fold 1 --workers 0 --threads 1 --precision bf16 \
        --ood-false-flag-rate 0 --no-plots "${opt[@]}" --run-dir "$OUT/$name" --overwrite \
        --name "ablation-$name" > "$OUT/$name.log" 2>&1
}
running=0
for name in "${!RUNS[@]}"; do
    run "$name" "${RUNS[$name]}" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = ["run\tkermany_fold1_bacc\toctdl_bacc\toctdl_normal_recall"]
for d in sorted(p for p in out.iterdir() if (p / "final_metrics.json").is_file()):
    m = json.loads((d / "final_metrics.json").read_text())
    t = m.get("test", {})
    normal = t.get("per_class", {}).get("NORMAL", {}).get("recall", float("nan"))
    rows.append(f"{d.name}\t{m['validation']['balanced_accuracy']:.3f}\t"
                f"{t.get('balanced_accuracy', float('nan')):.3f}\t{normal:.3f}")
(out / "summary.tsv").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
