#!/usr/bin/env bash
# Reproduce the bundled default model, resources/models/octviewer-demo-kermany.safetensors:
# ResNet-18 members trained from scratch by octviewer-train on the 648 Kermany B-scans in
# ../shared/data/kermany, all on the same patient split (--split-seed 0), then combined by
# `octviewer-train ensemble` (temperature refitted on the shared validation patients).
# About 40 minutes per member on 2 CPU cores (1 thread each, two members at a time).
#
# Usage: scripts/train_default_model.sh [SEED ...]     (default seeds: the shipped ones)
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(pwd)/.venv/bin:$PATH"
DATA=../shared/data/kermany
if [ $# -gt 0 ]; then SEEDS=("$@"); else SEEDS=(1 2); fi
mkdir -p runs
for s in "${SEEDS[@]}"; do
    OMP_NUM_THREADS=1 octviewer-train --data "$DATA" --architecture timm/resnet18 --img-size 224 \
        --epochs 30 --patience 30 --lr 1e-3 --weight-decay 0.05 --seed "$s" --split-seed 0 \
        --workers 0 --threads 1 --run-dir "runs/r18-s$s" --name "octviewer-demo-kermany-member$s" &
done
wait
members=()
for s in "${SEEDS[@]}"; do members+=("runs/r18-s$s/model.safetensors"); done
octviewer-train ensemble "${members[@]}" --data "$DATA" --split "runs/r18-s${SEEDS[0]}/split.csv" \
    --run-dir runs/ensemble --overwrite --hflip-tta --fp16-weights \
    --output resources/models/octviewer-demo-kermany.safetensors \
    --name octviewer-demo-kermany --model-version 1.0.0 \
    --licence "CC BY 4.0 (trained on Kermany et al. 2018, CC BY 4.0); research use only" \
    --description "Demo model: an ensemble of ResNet-18 networks trained from scratch by octviewer-train on 648 public OCT B-scans (Kermany 2018). Not MIRAGE weights. Research use only, not for diagnosis."
python scripts/write_model_card.py resources/models/octviewer-demo-kermany.safetensors
