#!/usr/bin/env bash
# Issue 16's GPU targets as ONE prepared run (about 8 minutes on the H200; run it in a call of its
# own, after or instead of bench/gpu.sh): bench/scale.ts on WebGPU, each part under `timeout`:
#   1. tinyllama (1.10 B, random bf16 checkpoint written here): load + quantize on the device, QLoRA
#      steps at 4 × 512 (activations checkpointed, the default from 500 M parameters), decoding;
#      PyTorch + PEFT on the same folder beside it when torch with CUDA is installed
#      (bench/scale_torch.py, run by scale.ts itself). Target: our tok/s ≥ 0.5 of PEFT's.
#   2. the same without checkpointing (--grad-checkpoint off), for the ratio and the memory.
#   3. 7b (6.7 B, 13.5 GB of bf16 written here): must load, quantize, fit and train 2 steps.
# Every JSON and log goes to "$OUT" (else ./bench-out). Start it in the repository root on the GPU
# machine after `source .gpu/enter.sh`, with node_modules/ (see bench/gpu.sh and
# ../shared/gpu/README.md). `bash bench/gpu_scale.sh --quick` runs the pipeline at the `tiny`
# shape (lavapipe) to check it before spending GPU time.
set -u
OUT="${OUT:-./bench-out}"
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/loralab-runtime}"
mkdir -p "$XDG_RUNTIME_DIR"
if command -v deno >/dev/null; then DENO=(deno); else DENO=(npx -y deno@2.9.6); fi
SCALE=("${DENO[@]}" run --allow-read --allow-write --allow-env --allow-run --allow-ffi=/usr/lib
  --allow-sys=systemMemoryInfo bench/scale.ts --backend webgpu --json)
CK="${SCALE_DIR:-/tmp/loralab-scale}" # the checkpoints, reused between parts
SMALL=tinyllama BIG=7b SHAPE=(--batch 4 --ctx 512) BIGSHAPE=(--batch 1 --ctx 512)
if [ "${1:-}" = "--quick" ]; then SMALL=tiny BIG=tiny SHAPE=(--batch 2 --ctx 64) BIGSHAPE=(--batch 1 --ctx 64); fi

TOTAL="${GPU_BENCH_BUDGET:-570}"
START=$SECONDS
source "$(dirname "$0")/gpu_part.sh" # part NAME BUDGET CMD...

part scale-1-$SMALL 150 "${SCALE[@]}" --config $SMALL --dir "$CK/$SMALL" --steps 4 "${SHAPE[@]}" --decode 32
part scale-2-$SMALL-no-ckpt 90 "${SCALE[@]}" --config $SMALL --dir "$CK/$SMALL" --steps 4 "${SHAPE[@]}" \
  --decode 0 --grad-checkpoint off
part scale-3-$BIG 300 "${SCALE[@]}" --config $BIG --dir "$CK/$BIG" --steps 2 "${BIGSHAPE[@]}" --decode 8
for f in "$OUT"/scale-*.json; do
  "${DENO[@]}" eval "const r = JSON.parse(Deno.readTextFileSync('$f')); console.log(
    '$f', r.config, 'load', r.load?.seconds?.toFixed(1), 's; train', r.train?.tokens_per_s?.toFixed(1),
    'tok/s, peak device', ((r.train?.peak_device_bytes ?? 0) / 1e9).toFixed(2), 'GB; decode',
    r.decode?.tokens_per_s?.toFixed(1), 'tok/s; torch', JSON.stringify(r.torch?.train ?? r.torch?.note ?? null))" \
    2>/dev/null || echo "$f: no result"
done | tee "$OUT/scale_summary.txt"
