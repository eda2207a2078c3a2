#!/usr/bin/env bash
# Reproduce the bundled default model, resources/models/octviewer-demo-kermany.safetensors:
# 4-fold patient-level cross-validation on the 648 Kermany B-scans in ../shared/data/kermany.
# One ResNet-18 per fold, trained from scratch by octviewer-train on the other three folds
# (--folds 4 --fold K, --split-seed 0), then combined by `octviewer-train ensemble`:
# - each member's final epoch (--member-weights last: the held-out patients choose nothing);
# - out-of-fold metrics over all 648 images, each predicted by the member that never saw it;
# - one temperature fitted on those out-of-fold predictions;
# - mirrored-view test-time augmentation, int8 weights (4 x 11 MB).
# About 28 minutes per fold on one core of an AVX512-BF16 CPU (bf16 autocast); two folds run at
# a time on 2 cores. Without native bf16, use --precision fp32 (about 2.4x slower).
#
# Usage: scripts/train_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(pwd)/.venv/bin:$PATH"
DATA=../shared/data/kermany
FOLDS=(1 2 3 4)
JOBS=${JOBS:-2}
mkdir -p runs
train() {
    OMP_NUM_THREADS=1 octviewer-train --data "$DATA" --architecture timm/resnet18 --img-size 224 \
        --epochs 50 --patience 100 --lr 1e-3 --weight-decay 0.05 --seed "$1" --split-seed 0 \
        --folds 4 --fold "$1" --workers 0 --threads 1 --precision bf16 \
        --run-dir "runs/cv4-fold$1" --name "octviewer-demo-kermany-fold$1"
}
running=0
for k in "${FOLDS[@]}"; do
    train "$k" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
members=()
for k in "${FOLDS[@]}"; do members+=("runs/cv4-fold$k/model.safetensors"); done
octviewer-train ensemble "${members[@]}" --data "$DATA" \
    --run-dir runs/ensemble --overwrite --member-weights last --hflip-tta --int8-weights \
    --ood-false-flag-rate 0 --output resources/models/octviewer-demo-kermany.safetensors \
    --name octviewer-demo-kermany --model-version 2.0.0 \
    --licence "CC BY 4.0 (trained on Kermany et al. 2018, CC BY 4.0); research use only" \
    --description "Demo model: an ensemble of four ResNet-18 networks (4-fold patient cross-validation) trained from scratch by octviewer-train on 648 public OCT B-scans (Kermany 2018). Not MIRAGE weights. Research use only, not for diagnosis."
# 2.1.0: the same weights plus out-of-distribution statistics (threshold on held-out folds)
octviewer-train ood resources/models/octviewer-demo-kermany.safetensors --data "$DATA" \
    --output resources/models/octviewer-demo-kermany.safetensors --model-version 2.1.0 \
    --training-domain '{"manufacturers": ["Heidelberg Engineering"], "devices": ["Spectralis"], "scan_type": "macular B-scans through the fovea (Kermany 2018 exports)"}' \
    --ood-dev ../shared/data/ood ../shared/data/dicom/topcon_bscan_opt.dcm \
    ../shared/data/vendor/TEST_T_2707_0.vol ../shared/data/vendor/TEST_T_2710_0.vol \
    ../shared/data/vendor/Willis_B_716_0.vol --threads 1
# 2.2.0: the same weights plus a static int8 calibration (--int8 runs int8 convolutions)
octviewer-train int8 resources/models/octviewer-demo-kermany.safetensors --data "$DATA" \
    --output resources/models/octviewer-demo-kermany.safetensors --model-version 2.2.0 --threads 1
# 2.3.0: the same weights and int8 calibration; out-of-distribution statistics re-fitted on
# L2-normalised features (shrinkage 0.05, docs/OOD.md "Variants measured") and the scope the
# model reads (macular line and volume scans: other stated protocols are not assessed)
octviewer-train ood resources/models/octviewer-demo-kermany.safetensors --data "$DATA" \
    --output resources/models/octviewer-demo-kermany.safetensors --model-version 2.3.0 \
    --normalize l2 --shrinkage 0.05 \
    --training-domain '{"manufacturers": ["Heidelberg Engineering"], "devices": ["Spectralis"], "scan_type": "macular B-scans through the fovea (Kermany 2018 exports)", "scan_patterns": ["line", "volume"], "regions": ["macula"]}' \
    --ood-dev ../shared/data/ood ../shared/data/dicom/topcon_bscan_opt.dcm \
    ../shared/data/vendor/TEST_T_2707_0.vol ../shared/data/vendor/TEST_T_2710_0.vol \
    ../shared/data/vendor/Willis_B_716_0.vol ../shared/data/vendor/circular-valid.vol --threads 2
python scripts/write_model_card.py resources/models/octviewer-demo-kermany.safetensors
scripts/train_sources_model.sh  # 3.0.0: fine-tuned on every labelled source (FROM/OUT: the bundle above)
