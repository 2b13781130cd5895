#!/usr/bin/env bash
# The Triton convolutions on a CUDA GPU (issue 14, part 2), from the repository root:
#
#   bash bench/gpu_triton.sh
#
# Needs torch with CUDA, triton, transformers and numpy. About 6 minutes on an H100. Prints:
#   1. Triton against cuDNN (bf16) for every convolution of the paper preset's stacked CNN: relative
#      differences of the output and of the input, weight and bias gradients (exit 1 if any is over
#      3e-2, bf16's rounding being about 4e-3); the rest then runs on cuDNN (KERNEL=cudnn);
#   2. bench/stacked_step.py, K = 16 and 68 folds stacked, eager: cuDNN (NCHW) and Triton;
#   3. the same step for K = 68 compiled as CUDA graphs (--compile reduce-overhead);
#   4. bench/train.py --stack-folds 34 --epochs 2 with the better of 2 and 3: seconds per fold and
#      what the paper preset's 68 folds take (stage 1, features, stage 2);
#   5. bench/stacked_step.py --forms, K = 16 and 68: each convolution written every way, Triton's row
#      included.
# Each step has its own timeout; BUDGET=S (seconds) skips the steps that would start after S. Where
# $OUT is a folder (the device machine's), the output is also appended to $OUT/gpu_triton.log.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
BUDGET=${BUDGET:-0}
START=$(date +%s)
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    exec > >(tee -a "$OUT/gpu_triton.log") 2>&1
fi
elapsed() { echo "  ($(( $(date +%s) - START )) s since the start)"; }
spent() {
    if [ "$BUDGET" -gt 0 ] && [ $(( $(date +%s) - START )) -ge "$BUDGET" ]; then
        echo "== $1: skipped, $(( $(date +%s) - START )) s of BUDGET=$BUDGET s spent"
        return 0
    fi
    return 1
}
quiet() { grep -v -i "warn" | grep -v "^\s*$"; }

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

echo "== 1. Triton against cuDNN, bf16, the paper preset's convolutions with 2 folds stacked (12 groups), batch 16"
KERNEL=triton
timeout 150 "$PY" - <<'PY' 2>&1 | quiet || KERNEL=cudnn
import sys
import torch
import torch.nn.functional as F
from modeling_mie import MieConfig
from modeling_mie.modeling_mie import MieRegionCNN
from modeling_mie.triton_conv import region_conv

config = MieConfig.from_preset("paper")
torch.manual_seed(0)
cnn = MieRegionCNN(config, num_regions=2 * config.num_regions).cuda()
(h, w), c = config.crop_size, config.num_channels
layers = [("conv1", cnn.conv1, c, h, w), ("conv2", cnn.conv2, config.conv1_filters, h // 2, w // 2)]
layers += [(f"inception {k}x{k}", b, config.conv2_filters, h // 4, w // 4) for k, b in zip(config.inception_kernel_sizes, cnn.inception)]
worst = 0.0
for name, layer, channels, lh, lw in layers:
    x = torch.randn(16, layer.num_regions * channels, lh, lw, device="cuda").requires_grad_()
    outs = []
    for conv in (lambda: region_conv(x, layer.weight, layer.bias),
                 lambda: F.conv2d(x, layer.weight.flatten(0, 1), layer.bias.flatten(), padding=layer.kernel_size // 2,
                                  groups=layer.num_regions)):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = conv()
        grads = torch.autograd.grad(y.float(), (x, layer.weight, layer.bias), torch.ones_like(y, dtype=torch.float32) / y.numel() ** 0.5)
        outs.append((y.float(), *grads))
    diffs = [((a - b).norm() / b.norm()).item() for a, b in zip(*outs)]
    worst = max(worst, *diffs)
    print(f"  {name:14s} relative difference: output {diffs[0]:.1e}, input grad {diffs[1]:.1e}, "
          f"weight grad {diffs[2]:.1e}, bias grad {diffs[3]:.1e}")
torch.cuda.synchronize()
print(f"  worst {worst:.1e}: {'agrees' if worst < 3e-2 else 'DISAGREES: the rest runs on cuDNN'}")
sys.exit(0 if worst < 3e-2 else 1)
PY
echo "  convolutions for the rest: $KERNEL"; elapsed

spent "2. stacked steps" || {
echo "== 2. bench/stacked_step.py paper bf16, eager, cuDNN (NCHW) then $KERNEL"
kernels=cudnn
[ "$KERNEL" = triton ] && kernels="cudnn triton"
for kernel in $kernels; do
    timeout 120 "$PY" bench/stacked_step.py --device cuda --precision bf16 --preset paper --folds 16 68 --steps 5 \
        --conv-kernel "$kernel" 2>&1 | quiet | tail -4
done
elapsed
}

COMPILE=off
spent "3. compiled stacked step" || {
echo "== 3. bench/stacked_step.py paper bf16, K = 68, $KERNEL, --compile reduce-overhead"
timeout 150 "$PY" bench/stacked_step.py --device cuda --precision bf16 --preset paper --folds 68 --steps 10 \
    --conv-kernel "$KERNEL" --compile reduce-overhead > /tmp/compiled.log 2>&1 && COMPILE=reduce-overhead
quiet < /tmp/compiled.log | tail -4
elapsed
}

spent "4. stacked run" || {
echo "== 4. bench/train.py paper bf16, 34 folds stacked, 2 epochs, $KERNEL, compile $COMPILE"
timeout 240 "$PY" bench/train.py --device cuda --precision bf16 --presets paper --epochs 2 --stack-folds 34 \
    --conv-kernel "$KERNEL" --compile "$COMPILE" 2>&1 | quiet | tail -7
elapsed
}

spent "5. forms" || {
echo "== 5. bench/stacked_step.py --forms, K = 16 68"
timeout 150 "$PY" bench/stacked_step.py --device cuda --precision bf16 --preset paper --folds 16 68 --steps 5 \
    --forms 2>&1 | quiet | grep -E "^ +[0-9]+ +(conv|inception)" | grep -E "NCHW|triton|im2col"
elapsed
}
echo "== done in $(( $(date +%s) - START )) s"
