#!/usr/bin/env bash
# Makes BUNDLE_DIR for part 3 of bench/gpu_check.sh, on a machine with the full install (make test's
# .venv, MediaPipe's face_landmarker.task): the tiny synthetic set and its filled region cache under
# /tmp/mie-gpu (the GPU check unpacks them at that same path: cache keys hash frame paths and mtimes),
# as data.tar, plus wheels of what the GPU image lacks for the LOSO command (datasets and its dill and
# multiprocess, openpyxl for the SAMM-style workbooks, et_xmlfile). About 40 MB: put BUNDLE_DIR in
# the repository, ignored by git, and carry it.
#
#   bash bench/gpu_bundle.sh .gpu-bundle       # then, on the GPU: bash bench/gpu_check.sh .gpu-bundle
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/gpu_bundle.sh BUNDLE_DIR}
PY=${PY:-.venv/bin/python}
root=/tmp/mie-gpu
rm -rf "$root" && mkdir -p "$root" "$out/whl"
"$PY" -m modeling_mie.synthetic --out "$root/data/tiny" --profile tiny
# whole-second mtimes: a tar keeps only seconds, and the cache keys hash mtime_ns
find "$root/data" -type f -exec touch -m -d @1767225600 {} +
# one quick fold fills the cache for the fast preset's geometry
"$PY" train/loso.py --dataset "synthetic=$root/data/tiny" --cache-dir "$root/cache" --output-dir "$root/fill" \
    --device cpu --stage1-epochs 1 --stage2-epochs 1 --num-frames 4 --folds smic/s1 --no-final >/dev/null
rm -rf "$root/fill"
tar -cf "$out/data.tar" -C / "${root#/}"
echo "$root" > "$out/root"
versions=$("$PY" -c "from importlib.metadata import version as v; print(' '.join(f'{n}=={v(n)}' for n in ('datasets','dill','multiprocess','openpyxl','et_xmlfile')))")
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py --abi none \
    --platform any -d "$out/whl" $versions
ls -la "$out" "$out/whl"
du -sh "$out"
