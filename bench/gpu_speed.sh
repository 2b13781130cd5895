#!/usr/bin/env bash
# Stage-1 speed on one GPU (issue 14, part 2): run on a machine with a CUDA GPU, from the repository root.
#
#   bash bench/gpu_speed.sh
#
# Needs only torch (CUDA build, with triton for torch.compile), transformers and numpy. Prints, in
# about 4 minutes on an H100, bench/train.py on the paper preset (bf16, one fold of the MEGC-composite
# shape, EPOCHS=2 epochs of each stage timed and scaled to 100 + 60), once per variant:
#   eager-old   eager steps, foreach Adam (the path measured at 3.4 s per epoch)
#   eager       eager steps with fused Adam (the CUDA default now)
#   compile     --compile: torch.compile of each step (inductor), last batch padded
#   cudagraphs  --compile reduce-overhead: the same, replayed as CUDA graphs
# then a table (seconds per stage-1 epoch, per fold, 68 folds in hours, speed-up over eager-old),
# a profile of 20 eager steps (the CUDA kernels that take the time, and whether the step waits on
# the CPU's launches or on the GPU), and CONCURRENT=N processes of one variant side by side
# (default 3 of `compile`; CONCURRENT=0 skips it). Every step has its own timeout (STEP_TIMEOUT,
# 150 s), and a step that fails or times out is reported and the others still run.
# First of all (about 2-3 minutes): bench/stacked_step.py, the paper preset's stage-1 step with K
# folds stacked in one model (train/loso.py --stack-folds K), K = STACK_FOLDS (1 16 68) eager and
# STACK_FOLDS_COMPILED (17 68) compiled and as CUDA graphs: how far one step of many folds beats
# many steps of one (STACKED=0 skips it); then
# bench/train.py with stage 1 and the features of STACK_RUN (17, what --stack-folds auto stacks on
# CUDA) folds stacked, 2 epochs, and one fold's stage 2: seconds per fold with stacking (STACK_RUN=0
# skips it; its own timeout, 300 s).
# Then (BASELINES=1, about a minute) the compared CNNs on the GPU: bench/flow_nets.py --device cuda
# --epochs 3, seconds per epoch of their paper schedules (train/loso.py --method ... --device cuda).
# With little device time, the stacked rows and the CUDA-graph row first:
#   CONCURRENT=0 VARIANTS="eager cudagraphs" BUDGET=480 bash bench/gpu_speed.sh
# BUDGET=S (seconds, default 0: none) skips every step that would start after S seconds, saying so,
# so that a caller's own time limit does not cut a step in half. Where $OUT is a folder (the device
# machine's), everything printed is also appended to $OUT/gpu_speed.log as it comes.
# The eager stacked probe also times each convolution alone for every K, written several ways
# (`--forms`: grouped NCHW as CUDA runs it, channels-last, unfold + batched matmul, conv1 depthwise,
# the first layer with cuDNN and fused, the inception block as branches and merged; FORMS=0 skips it).
# STEP_VARIANTS ("cudnn fused merged fused+merged") are the ways of running the region CNN that the
# stacked probe and the stacked runs compare (bench/stacked_step.py --variants); with fused among them,
# bench/fused_conv.py runs first (agreement with float32 and milliseconds of conv1 and conv2 alone,
# K = 1 16 68). With the budget of one short call, the new kernels' question first (no compiled
# probes: each compiles for tens of seconds per variant and K):
#   CONCURRENT=0 BASELINES=0 VARIANTS= STACK_FOLDS="68 16" STACK_FOLDS_COMPILED= FORMS=0 STACK_RUN=68 \
#   STEP_VARIANTS="fused-all fused cudnn" BUDGET=420 bash bench/gpu_speed.sh
# (the variant that may reach the goal first, cuDNN's last: its 68-fold step was measured, 202 ms).
# STACK_RUN may name several K ("68 34").
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
EPOCHS=${EPOCHS:-2}
STEP_TIMEOUT=${STEP_TIMEOUT:-150}
CONCURRENT=${CONCURRENT:-3}
CONCURRENT_VARIANT=${CONCURRENT_VARIANT:-compile}
VARIANTS=${VARIANTS-eager-old eager compile cudagraphs}  # empty: none
STACKED=${STACKED:-1}
STACK_FOLDS=${STACK_FOLDS:-1 16 68}
STACK_FOLDS_COMPILED=${STACK_FOLDS_COMPILED-17 68}  # each K compiles anew (tens of seconds)
STACK_RUN=${STACK_RUN:-17}
FORMS=${FORMS:-1}  # 0: no per-convolution --forms table in the eager stacked probe
# the ways of running the region CNN compared in the stacked probe and the stacked run
# (bench/stacked_step.py --variants: cudnn, fused (Triton conv1 and conv2), merged (one 7x7 inception), fused+merged,
# fused-all (Triton conv1, conv2 and inception block))
STEP_VARIANTS=${STEP_VARIANTS-cudnn fused merged fused+merged fused-all}
BASELINES=${BASELINES:-1}
BUDGET=${BUDGET:-0}
LOGS=$(mktemp -d)
START=$(date +%s)
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    exec > >(tee -a "$OUT/gpu_speed.log") 2>&1
fi

# true (and says so) when the budget is spent: the step named $1 is skipped
spent() {
    if [ "$BUDGET" -gt 0 ] && [ $(( $(date +%s) - START )) -ge "$BUDGET" ]; then
        echo "== $1: skipped, $(( $(date +%s) - START )) s of BUDGET=$BUDGET s spent"
        return 0
    fi
    return 1
}

flags() {
    case "$1" in
        eager-old) echo "--no-cuda-tuning" ;;
        eager) echo "" ;;
        compile) echo "--compile" ;;
        cudagraphs) echo "--compile reduce-overhead" ;;
    esac
}

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
timeout 60 "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'transformers', transformers.__version__, 'GPU', torch.cuda.is_available()); import triton; print('triton', triton.__version__)" \
    || echo "(version check FAILED)"

case " $STEP_VARIANTS " in
    *" fused"*)
        if ! spent "fused conv1"; then
            echo "== conv1, conv2: bench/fused_conv.py paper bf16, cuDNN conv + pool + ReLU against the fused Triton kernels"
            timeout "$STEP_TIMEOUT" "$PY" bench/fused_conv.py --folds 1 16 68 2>&1 | grep -v "Warning\|warn(" | tail -10 \
                || echo "  fused_conv FAILED or timed out"
            echo "  ($(( $(date +%s) - START )) s since the start)"
        fi ;;
esac
if [ "$STACKED" -gt 0 ]; then
    for mode in off default reduce-overhead; do
        spent "stacked folds, compile $mode" && continue
        ks=$STACK_FOLDS layers=""
        [ "$FORMS" -gt 0 ] && layers="--forms"
        [ "$mode" = off ] || { ks=$STACK_FOLDS_COMPILED; layers=""; }
        [ -n "$ks" ] || continue
        echo "== stacked folds: bench/stacked_step.py paper bf16, compile $mode, K = $ks, variants $STEP_VARIANTS"
        # shellcheck disable=SC2086
        timeout "$STEP_TIMEOUT" "$PY" bench/stacked_step.py --device cuda --precision bf16 --preset paper \
            --folds $ks --steps 10 --compile "$mode" --variants $STEP_VARIANTS $layers 2>&1 \
            | grep -v "Warning\|warn(" | grep -v "^stacked_step_ms" | tail -80
        echo "  ($(( $(date +%s) - START )) s since the start)"
    done
fi
for stack_run in $STACK_RUN; do
    [ "$stack_run" -gt 1 ] || continue
    for variant in $STEP_VARIANTS; do
        spent "stacked run, K = $stack_run, $variant" && continue
        case "$variant" in
            cudnn) vflags="" ;; fused) vflags="--conv-kernel triton" ;; merged) vflags="--merged-inception" ;;
            fused+merged) vflags="--conv-kernel triton --merged-inception" ;;
            fused-all) vflags="--conv-kernel triton --inception-kernel triton" ;;
        esac
        echo "== bench/train.py paper bf16, stage 1 of $stack_run folds stacked, $EPOCHS epochs per stage, $variant ($vflags)"
        # shellcheck disable=SC2086
        timeout 300 "$PY" bench/train.py --device cuda --precision bf16 --presets paper --epochs "$EPOCHS" \
            --stack-folds "$stack_run" $vflags 2>&1 | grep -v "^\s*$" | grep -v "Warning\|warn(" | tail -6 \
            || echo "  stacked run FAILED or timed out"
        echo "  ($(( $(date +%s) - START )) s since the start)"
    done
done

if [ "$BASELINES" -gt 0 ] && ! spent "compared CNNs"; then
    echo "== compared CNNs on the GPU: bench/flow_nets.py --device cuda --epochs 3 (paper schedules' batches)"
    timeout "$STEP_TIMEOUT" "$PY" bench/flow_nets.py --device cuda --epochs 3 2>&1 | grep -v "Warning\|warn(" | tail -5 \
        || echo "  flow_nets FAILED or timed out"
    echo "  ($(( $(date +%s) - START )) s since the start)"
fi

for variant in $VARIANTS; do
    spent "bench/train.py $variant" && continue
    echo "== bench/train.py paper bf16, $variant ($(flags "$variant")), $EPOCHS epochs per stage"
    # shellcheck disable=SC2046
    timeout "$STEP_TIMEOUT" "$PY" bench/train.py --device cuda --precision bf16 --presets paper --epochs "$EPOCHS" \
        $(flags "$variant") > "$LOGS/$variant.log" 2>&1
    rc=$?
    grep -v "^\s*$" "$LOGS/$variant.log" | grep -v "Warning\|warn(" | tail -8
    [ $rc -eq 0 ] || { echo "  $variant FAILED (exit $rc$([ $rc -eq 124 ] && echo ", timed out after ${STEP_TIMEOUT} s"))"; tail -5 "$LOGS/$variant.log"; }
    echo "  ($(( $(date +%s) - START )) s since the start)"
done

echo "== summary: paper preset, bf16, one fold (stage-1 epochs after the first; fold and 68 folds scaled to 100 + 60 epochs)"
"$PY" - "$LOGS" $VARIANTS <<'PY'
import re, sys
from pathlib import Path

logs, variants = Path(sys.argv[1]), sys.argv[2:]
rows = {}
for v in variants:
    text = (logs / f"{v}.log").read_text() if (logs / f"{v}.log").exists() else ""
    fold = re.search(r"fold_s_paper=([\d.]+)", text)
    epoch = re.search(r"stage1_epoch_s_paper=([\d.]+)", text)
    first = re.search(r"the first took ([\d.]+) s more", text)
    rows[v] = (float(epoch.group(1)) if epoch else None, float(fold.group(1)) if fold else None,
               float(first.group(1)) if first else None)
base = rows.get("eager-old", (None,))[0]
print(f"{'variant':12s} {'s/epoch':>8s} {'x eager-old':>11s} {'first epoch +s':>14s} {'fold s':>8s} {'68 folds h':>10s} {'h, extra once':>13s}")
for v, (epoch, fold, first) in rows.items():
    if epoch is None or fold is None:
        print(f"{v:12s} {'FAILED':>8s}")
        continue
    speed = f"{base / epoch:.1f}x" if base else "-"
    once = (68 * (fold - first) + first) / 3600 if first is not None else float("nan")
    print(f"{v:12s} {epoch:8.3f} {speed:>11s} {first if first is not None else float('nan'):14.1f} {fold:8.1f} "
          f"{68 * fold / 3600:10.2f} {once:13.2f}")
print("goal: 68 folds in 0.5 h on one GPU, about 26 s per fold (stage 1 about 0.2 s per epoch)")
PY

spent "profile" || {
echo "== profile: 20 eager stage-1 steps of the paper preset (bf16, batch 64, fused Adam)"
timeout 120 "$PY" - <<'PY' || echo "profile FAILED or timed out"
import time
import torch
from modeling_mie import MieConfig, MieForVideoClassification
from modeling_mie.devices import autocast, float32_mode, prepare_model
from modeling_mie.modeling_mie import focal_loss
from modeling_mie.training import _adam, _to_float

device = torch.device("cuda")
config = MieConfig.from_preset("paper")
model = prepare_model(MieForVideoClassification(config), device)
cnn = model.region_cnn.train()
h, w = config.crop_size
frames = torch.randint(0, 256, (64, config.num_regions, config.num_channels, h, w), dtype=torch.uint8, device=device)
targets = torch.randint(0, config.num_region_classes, (64, config.num_regions), device=device)
optimizer = _adam(cnn.parameters(), 1e-3, 0.0, device)


def step():
    with autocast(device, "bf16"):
        _, logits = cnn(_to_float(frames))
    loss = focal_loss(logits.float().flatten(0, 1), targets.flatten(), config.focal_gamma)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


with float32_mode(device, "bf16"):
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(50):
        step()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / 50
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            step()
        torch.cuda.synchronize()
events = prof.key_averages()
gpu = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in events) / 20 / 1e3
print(f"step: {wall * 1e3:.2f} ms wall, {gpu:.2f} ms of GPU kernels; 432 steps an epoch -> {432 * wall:.2f} s "
      f"({'the GPU is busy: launch overhead is not the limit' if gpu > 0.8 * wall * 1e3 else 'the GPU waits for launches: CUDA graphs help'})")
for key in ("self_device_time_total", "self_cuda_time_total"):
    try:
        print(events.table(sort_by=key, row_limit=18, max_name_column_width=70))
        break
    except Exception as err:  # the key's name differs between torch versions
        last = err
else:
    print(f"(no kernel table: {last})")
PY
echo "  ($(( $(date +%s) - START )) s since the start)"
}

if [ "$CONCURRENT" -gt 0 ] && ! spent "concurrent processes"; then
    echo "== $CONCURRENT processes of $CONCURRENT_VARIANT side by side on the one GPU ($EPOCHS epochs each)"
    pids=()
    for i in $(seq 1 "$CONCURRENT"); do
        # shellcheck disable=SC2046
        timeout "$STEP_TIMEOUT" "$PY" bench/train.py --device cuda --precision bf16 --presets paper --epochs "$EPOCHS" \
            --seed "$i" $(flags "$CONCURRENT_VARIANT") > "$LOGS/concurrent$i.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || echo "  process $pid FAILED or timed out"; done
    "$PY" - "$LOGS" "$CONCURRENT" <<'PY'
import re, sys
from pathlib import Path

epochs = []
for i in range(1, int(sys.argv[2]) + 1):
    found = re.search(r"stage1_epoch_s_paper=([\d.]+)", (Path(sys.argv[1]) / f"concurrent{i}.log").read_text())
    if found:
        epochs.append(float(found.group(1)))
if epochs:
    mean = sum(epochs) / len(epochs)
    print(f"  stage-1 seconds per epoch in each process: {', '.join(f'{e:.3f}' for e in epochs)}; "
          f"throughput {len(epochs) / mean:.2f} epochs/s against one process's (see the table) ")
else:
    print("  no process finished")
PY
fi
echo "== done in $(( $(date +%s) - START )) s; logs in $LOGS"
