#!/usr/bin/env bash
# Reproduce the bundled default model, resources/models/octviewer-demo-kermany.safetensors:
# four ResNet-18 members trained from scratch by octviewer-train on the 648 Kermany B-scans in
# ../shared/data/kermany, all on the same patient split (--split-seed 0), then combined by
# `octviewer-train ensemble`: each member's final epoch (--member-weights last, so the
# validation patients choose no checkpoint), mirrored-view test-time augmentation, one
# temperature refitted on the shared validation patients, int8 weights (4 x 11 MB).
# About 30 minutes per member on one core of an AVX512-BF16 CPU (bf16 autocast); two members
# run at a time on 2 cores. Without native bf16, use --precision fp32 (about 2.4x slower).
#
# Usage: scripts/train_default_model.sh [SEED ...]     (default seeds: the shipped ones)
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(pwd)/.venv/bin:$PATH"
DATA=../shared/data/kermany
if [ $# -gt 0 ]; then SEEDS=("$@"); else SEEDS=(4 5 6 7); fi
JOBS=${JOBS:-2}
mkdir -p runs
train() {
    OMP_NUM_THREADS=1 octviewer-train --data "$DATA" --architecture timm/resnet18 --img-size 224 \
        --epochs 50 --patience 100 --lr 1e-3 --weight-decay 0.05 --seed "$1" --split-seed 0 \
        --workers 0 --threads 1 --precision bf16 --run-dir "runs/r18b-s$1" \
        --name "octviewer-demo-kermany-member$1"
}
running=0
for s in "${SEEDS[@]}"; do
    train "$s" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
members=()
for s in "${SEEDS[@]}"; do members+=("runs/r18b-s$s/model.safetensors"); done
octviewer-train ensemble "${members[@]}" --data "$DATA" --split "runs/r18b-s${SEEDS[0]}/split.csv" \
    --run-dir runs/ensemble --overwrite --member-weights last --hflip-tta --int8-weights \
    --output resources/models/octviewer-demo-kermany.safetensors \
    --name octviewer-demo-kermany --model-version 2.0.0 \
    --licence "CC BY 4.0 (trained on Kermany et al. 2018, CC BY 4.0); research use only" \
    --description "Demo model: an ensemble of four ResNet-18 networks trained from scratch by octviewer-train on 648 public OCT B-scans (Kermany 2018). Not MIRAGE weights. Research use only, not for diagnosis."
python scripts/write_model_card.py resources/models/octviewer-demo-kermany.safetensors
