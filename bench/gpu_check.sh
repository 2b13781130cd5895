#!/usr/bin/env bash
# The GPU check of training (issue 14): run on a machine with a CUDA GPU, from the repository root.
#
#   bash bench/gpu_check.sh [BUNDLE_DIR]
#
# Needs only torch (CUDA build), transformers, numpy, safetensors, huggingface_hub: no mediapipe,
# gradio or datasets (the composite-shaped clips of bench/train.py are made in memory). Prints:
#   1. the device; CPU vs CUDA fp32 vs CUDA bf16 on the same seed (the same small fold): how far the
#      probabilities move and whether the predictions agree;
#   2. bench/train.py on CUDA: one LOSO fold of the paper preset (442-clip composite shape), 3 full
#      epochs of each stage timed and scaled to the schedule (100 + 60 epochs), bf16 and fp32; the
#      fast preset likewise; seconds per epoch and per fold, and 68 folds in hours.
#   3. only with BUNDLE_DIR (made by `bash bench/gpu_bundle.sh DIR` on a machine with the full
#      install): train/loso.py --device cuda end to end on the tiny synthetic set over a filled
#      region cache, with --workers 2 on the one GPU, then --resume. The bundle carries wheels of
#      datasets, dill, multiprocess, openpyxl and et_xmlfile (missing on the GPU image) and
#      the data and cache as a tar to unpack at the same absolute path (the cache keys hash frame
#      paths and mtimes).
# Takes about 4-6 minutes on an H100 (most of it the paper preset's stage 1). Set EPOCHS=N to time
# more epochs, PRESETS="paper" to skip the fast preset.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
EPOCHS=${EPOCHS:-3}
PRESETS=${PRESETS:-paper fast}
BUNDLE=${1:-}

echo "== 1. device and agreement between devices"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$PY" - <<'PY'
import sys, time
import torch
from modeling_mie import MieConfig
from modeling_mie.devices import describe_device, resolve_device, resolve_precision
from modeling_mie.training import TRAINING_PRESETS, train_model
sys.path.insert(0, "bench")
from train import composite_like_clips  # noqa: E402

print(f"torch {torch.__version__} CUDA {torch.version.cuda} available {torch.cuda.is_available()}")
if not torch.cuda.is_available():
    sys.exit("no CUDA device: this check is for a GPU machine")
heavy = [m for m in ("mediapipe", "gradio", "datasets", "cv2") if m in sys.modules]
print(f"heavy modules imported by the training path: {heavy or 'none'}")
config = MieConfig.from_preset("fast")
clips = composite_like_clips(config, 0)[:90]  # SMIC-like clips of a few subjects: a small fold
held_out = clips[0].subject
train = [c for c in clips if c.subject != held_out]
test = [c for c in clips if c.subject == held_out] + clips[-10:]
schedule = TRAINING_PRESETS["fast"].updated(stage1_epochs=2, stage2_epochs=10)
runs = {}
for device, precision in [("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "tf32"), ("cuda", "bf16")]:
    d = resolve_device(device)
    start = time.perf_counter()
    out = train_model(config, train, schedule, seed=0, test_clips=test, device=d, precision=resolve_precision(precision, d))
    runs[(device, precision)] = out
    print(f"  {describe_device(d, precision):45s} {time.perf_counter() - start:6.1f} s  stage1 losses {[round(x, 5) for x in out.stage1.losses]}")
ref = runs[("cpu", "fp32")].probabilities
for key, out in runs.items():
    diff = (out.probabilities - ref).abs().max().item()
    agree = (out.probabilities.argmax(1) == ref.argmax(1)).float().mean().item()
    print(f"  {key[0]:4s} {key[1]:4s} vs cpu fp32: max |dp| {diff:.2e}, same prediction on {agree:.0%} of {len(ref)} clips")
PY
[ $? -eq 0 ] || echo "step 1 FAILED"

echo "== 2. bench/train.py on CUDA (${EPOCHS} epochs per stage, scaled to the schedule)"
for precision in bf16 fp32; do
    "$PY" bench/train.py --device cuda --precision "$precision" --presets $PRESETS --epochs "$EPOCHS" \
        || echo "bench/train.py --precision $precision FAILED"
done

if [ -n "$BUNDLE" ]; then
    echo "== 3. train/loso.py --device cuda over the bundle $BUNDLE"
    if ! "$PY" -c "import datasets, openpyxl" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/mie-site "$BUNDLE"/whl/*.whl \
            && export PYTHONPATH="$PYTHONPATH:/tmp/mie-site"
    fi
    root=$(cat "$BUNDLE/root")
    mkdir -p "$root" && tar -xf "$BUNDLE/data.tar" -C / || echo "unpacking the bundle FAILED"
    common=(--dataset "synthetic=$root/data/tiny" --cache-dir "$root/cache" --device cuda
            --stage1-epochs 2 --stage2-epochs 8 --num-frames 8 --folds casme2/sub01 samm/006 smic/s2)
    "$PY" train/loso.py "${common[@]}" --output-dir /tmp/mie-gpu-run --workers 2 --no-final 2>&1 | grep -v "it/s]\|s/it]" \
        || echo "LOSO on CUDA FAILED"
    rm -f /tmp/mie-gpu-run/folds/smic__s2.json
    "$PY" train/loso.py "${common[@]}" --output-dir /tmp/mie-gpu-run --resume 2>&1 | grep -E "resuming|full|device|done|error|Error" \
        || echo "LOSO --resume on CUDA FAILED"
    grep -h '"device"' /tmp/mie-gpu-run/folds/*.json | sort | uniq -c
fi
echo "== done"
