#!/usr/bin/env bash
# Default model 3.0.0: the 2.x ensemble fine-tuned on every labelled source in ../shared/data
# (Kermany's Spectralis exports and OCTDL's Optovue B-scans of another hospital), with the
# variation real macular scans have (training/variation.py) and outlier exposure on OCTDL's
# findings outside the four classes. Called by scripts/train_default_model.sh after the 2.x
# steps; run it alone to redo only this stage from the 2.x bundle in $FROM.
#
# - one CSV of both sources (octviewer-train sources): folds dealt per source, so Kermany's
#   folds are those of the 2.x members and member K starts from 2.x member K (--init ...@K):
#   every B-scan keeps one member that never saw its patient (out-of-fold metrics stay honest);
# - out-of-distribution statistics on both sources (L2-normalised, shrinkage 0.05);
# - the NORMAL operating point chosen out of fold (source-eval: <= 1 % of each source's
#   diseased B-scans headlined NORMAL without a caution), int8 calibration, arithmetic check.
# About 20 minutes per fold on one core (bf16); two folds at a time on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(pwd)/.venv/bin:$PATH"
SHARED=../shared/data
FROM=${FROM:-resources/models/octviewer-demo-kermany.safetensors}
OUT=${OUT:-resources/models/octviewer-demo-kermany.safetensors}
EPOCHS=${EPOCHS:-10}
VARIATION=${VARIATION:-speckle,zoom}  # kept by scripts/ablate_variation.sh (docs/TRAINING.md)
JOBS=${JOBS:-2}
FOLDS=${FOLDS:-1 2 3 4}  # e.g. FOLDS="3 4" to (re)train only those; the others must exist
RUNS=runs/v3
mkdir -p "$RUNS"
cp "$FROM" "$RUNS/from.safetensors"
octviewer-train sources kermany=$SHARED/kermany octdl=$SHARED/octdl --output "$RUNS/sources.csv"
train() {
    OMP_NUM_THREADS=1 octviewer-train --data "$RUNS/sources.csv" --classes CNV,DME,DRUSEN,NORMAL \
        --outlier-label OTHER --architecture timm/resnet18 --img-size 224 \
        --init "bundle:$RUNS/from.safetensors@$1" --epochs "$EPOCHS" --warmup-epochs 1 \
        --lr 3e-4 --weight-decay 0.05 --seed "$1" --split-seed 0 --folds 4 --fold "$1" \
        --augment-extra "$VARIATION" --workers 0 --threads 1 --precision bf16 \
        --ood-false-flag-rate 0 --no-plots --overwrite \
        --run-dir "$RUNS/fold$1" --name "octviewer-demo-fold$1" > "$RUNS/fold$1.log" 2>&1
}
running=0
for k in $FOLDS; do
    train "$k" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
DOMAIN='{"manufacturers": ["Heidelberg Engineering", "Optovue"], "devices": ["Spectralis", "Avanti RTVue XR"], "scan_type": "macular B-scans (Kermany 2018 Spectralis exports; OCTDL Optovue exports)", "scan_patterns": ["line", "volume"], "regions": ["macula"]}'
DEV=("$SHARED/ood" "$SHARED/dicom/topcon_bscan_opt.dcm" "$SHARED/vendor/circular-valid.vol")
octviewer-train ensemble "$RUNS"/fold{1,2,3,4}/model.safetensors --data "$RUNS/sources.csv" \
    --run-dir "$RUNS/ensemble" --overwrite --member-weights last --hflip-tta --int8-weights \
    --ood-false-flag-rate 0 --output "$RUNS/ensemble.safetensors" \
    --name octviewer-demo --model-version 3.0.0-members \
    --licence "CC BY 4.0 (trained on Kermany et al. 2018 and OCTDL, Kulyabin et al. 2024, both CC BY 4.0); research use only" \
    --description "Demo model: an ensemble of four ResNet-18 networks (4-fold patient cross-validation), trained from scratch on 648 Kermany B-scans (Spectralis) and fine-tuned on those plus 757 OCTDL B-scans (Optovue, another hospital) with real-data variation augmentations and outlier exposure on 85 B-scans with other findings. Not MIRAGE weights. Research use only, not for diagnosis."
octviewer-train ood "$RUNS/ensemble.safetensors" --data "$RUNS/sources.csv" \
    --output "$RUNS/ood.safetensors" --normalize l2 --shrinkage 0.05 \
    --false-flag-rate "${OOD_RATE:-0.01}" --training-domain "$DOMAIN" --ood-dev "${DEV[@]}" --threads 2
octviewer-train source-eval "$RUNS/ood.safetensors" --data "$RUNS/sources.csv" \
    --choose-reassurance "$RUNS/reassure.safetensors" --report "$RUNS/source_eval.json" --threads 2 \
    ${UNCERTAIN_BELOW:+--uncertain-below "$UNCERTAIN_BELOW"} \
    --dev-assessed $SHARED/vendor/TEST_T_2707_0.vol $SHARED/vendor/TEST_T_2710_0.vol \
    $SHARED/vendor/Willis_B_716_0.vol --dev-withheld "${DEV[@]}"
octviewer-train int8 "$RUNS/reassure.safetensors" --data "$RUNS/sources.csv" \
    --output "$RUNS/int8.safetensors" --threads 2
octviewer-train validate "$RUNS/int8.safetensors" --data "$RUNS/sources.csv" --ood "${DEV[@]}" --limit 350 \
    --output "$OUT" --model-version 3.0.0 --threads 2
python scripts/write_model_card.py "$OUT"
