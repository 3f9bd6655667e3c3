#!/usr/bin/env bash
# One prepared GPU check (issue 24): Swin-T and Video Swin-T training and inference in bf16, eager then compiled,
# against timm / torchvision on the pinned versions, into $OUT (or outputs/) as JSON lines with machine and versions.
#   OUT=/tmp/gpu bash bench/gpu_check.sh            # on the lent machine, through the device tool: run once
#   DEVICE=cpu REPEAT=1 BATCH=1 CLIPS=1x4x32x32 TASKS=swin3d_t MODES=infer FORMS=eager OUT=/tmp/dry \
#       PY=.venv/bin/python bash bench/gpu_check.sh     # a dry run of the same commands on the CPU
set -euo pipefail
OUT=${OUT:-outputs}; DEVICE=${DEVICE:-cuda}; REPEAT=${REPEAT:-20}; BATCH=${BATCH:-64}
CLIPS=${CLIPS:-"8x16x224x224"}; TASKS=${TASKS:-"swin_t swin3d_t"}; MODES=${MODES:-"train infer"}
FORMS=${FORMS:-"eager compiled"}
PY=${PY:-python}
mkdir -p "$OUT"
$PY - <<'PY' > "$OUT/gpu_check_env.txt"
import platform, torch, timm, torchvision
print("torch", torch.__version__, "timm", timm.__version__, "torchvision", torchvision.__version__, "python",
      platform.python_version())
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor())
PY
for form in $FORMS; do
  compile=""; [ "$form" = compiled ] && compile="--compile"
  $PY -m bench.run --device "$DEVICE" --amp bf16 --fp32-refs --tasks $TASKS --modes $MODES --batch "$BATCH" \
      --clips $CLIPS --no-memory --warmup 3 --repeat "$REPEAT" $compile --out "$OUT/gpu_check.jsonl" 2>&1 \
      | tee -a "$OUT/gpu_check.log"
done
