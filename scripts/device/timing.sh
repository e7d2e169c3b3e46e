#!/bin/bash
# The executor's timing check on the device machine's CPUs (its GPU is not used: TensorFlow.js's native
# GPU backend cannot be installed without its download): `meshplan calibrate` into $OUT/profile.json,
# then ROUNDS rounds (default 3) of tiny-gpt dp2, tp2, pp2 1F1B, cp2 and pp2 GPipe, each
# `meshplan execute --json` against that profile, one line each (step and bubble, predicted and
# measured) and every report appended to $OUT/runs.jsonl. Stops starting rounds after 8 minutes.
# How to call it (the device tool's run, carrying .devnode and dist): bash scripts/device/timing.sh
. scripts/device/setup.sh
set -o pipefail
out=${OUT:-/tmp/meshplan-timing}
mkdir -p "$out"
start=$(date +%s)
node bin/meshplan.js calibrate --profile "$out/profile.json" > "$out/calibrate.txt" 2>&1 || { cat "$out/calibrate.txt"; exit 1; }
echo "calibrate took $(( $(date +%s) - start )) s"
for round in $(seq 1 "${ROUNDS:-3}"); do
  for flags in "--dp 2" "--tp 2" "--pp 2 --schedule 1f1b" "--cp 2" "--pp 2 --schedule gpipe"; do
    # shellcheck disable=SC2086
    node bin/meshplan.js execute --model tiny-gpt $flags --profile "$out/profile.json" --json > "$out/run.json" 2>/dev/null
    python3 - "$round" "$flags" "$out" <<'PY'
import json, sys
round_, flags, out = sys.argv[1:]
r = json.load(open(f"{out}/run.json"))
p, m = r["predicted"], r["measured"]
step = (m["stepSeconds"] / p["time"]["stepSeconds"] - 1) * 100
print(f"{round_} {flags}: step predicted {1e3 * p['time']['stepSeconds']:.2f} ms, measured {1e3 * m['stepSeconds']:.2f} ms ({step:+.1f}%); bubble predicted {p['pipeline']['bubbleFraction']:.3f}, measured {m['bubbleFraction']:.3f}")
with open(f"{out}/runs.jsonl", "a") as f:
    f.write(json.dumps(r) + "\n")
PY
    [ $(( $(date +%s) - start )) -gt 480 ] && break 2
  done
done
rm -f "$out/run.json"
echo "total $(( $(date +%s) - start )) s"
