#!/usr/bin/env bash
# One GPU, end to end: train the accuracy-goal recipes side by side (small networks leave an H200 mostly idle, so
# two processes share it) and write weights, logs and cards to $OUT. Meant for the `device` tool:
#
#   run(command="bash train/gpu/run.sh", timeout_s=540)          # with the data under shared/data
#
# A CPU smoke test of the same path (tests/test_gpu_script.py): EPOCHS=1 RECIPES=... DATA=... bash train/gpu/run.sh
# Variables: OUT (default runs/gpu), DATA (default shared/data, else $DEEP_EMOTION_DATA), EPOCHS (override),
# RECIPES (space-separated TOML files), DEVICE (auto), COMPILE (1: torch.compile; default 1 on CUDA),
# PYTHON (default python3), TIME_LIMIT (seconds each training may take; default 420).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/gpu}
DATA=${DATA:-${DEEP_EMOTION_DATA:-shared/data}}
RECIPES=${RECIPES:-"train/gpu/fer2013-wide-gpu.toml train/gpu/fer2013-paper-long-gpu.toml"}
DEVICE=${DEVICE:-auto}
PYTHON=${PYTHON:-python3}
TIME_LIMIT=${TIME_LIMIT:-420}
if [ -z "${COMPILE:-}" ]; then
  COMPILE=$($PYTHON -c "import torch; print(int(torch.cuda.is_available()))")
fi
mkdir -p "$OUT"
$PYTHON - <<'PY' > "$OUT/environment.json"
import json, platform, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                  "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  "cpus": __import__("os").cpu_count(), "python": platform.python_version()}))
PY
pids=()
for recipe in $RECIPES; do
  name=$(basename "$recipe" .toml)
  # --resume: a second call continues a run that the time limit cut (its state is under $OUT/runs)
  timeout --signal=INT "$TIME_LIMIT" $PYTHON -m deep_emotion train "$recipe" --data-dir "$DATA" --device "$DEVICE" \
    --run-dir "$OUT/runs/$name" --out "$OUT" --no-progress --resume ${EPOCHS:+--epochs "$EPOCHS"} \
    $([ "$COMPILE" = 1 ] && echo --compile) > "$OUT/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
tail -n 3 "$OUT"/*.log
exit $status
