#!/usr/bin/env bash
# One dataset's experiment (benchmarks/experiment.py) on a lent GPU machine that reaches no network,
# from a bundle written here by `python benchmarks/gpu_bundle.py prepare BUNDLE` and carried there.
# The models stay there; the manifests, logs and report come back as $OUT/results.tgz, and the
# progress as $OUT/log.txt. Settings (environment variables, defaults in brackets):
#   BUNDLE [.device]  DATASET [resume]  ROWS [hard,kd-unlabeled-bigrams; empty: the teacher alone]
#   TEACHER ["epochs=4"]  STUDENT ["epochs=6 patience=8"]: settings laid over the experiment file's
#   BENCHMARK ['variants=["torch","bf16","onnx-int8"] throughput_repeats=2 timeout=90 rounds=1']
#   RUN_OPTIONS [none]: more experiment.py options, e.g. --skip-benchmark
#   LIMIT [530]: seconds for experiment.py, so the results are packed before the call's own limit.
set -u -f  # -f: the TOML lists in settings are not glob patterns
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=$(cd "$ROOT" && cd "${BUNDLE:-.device}" && pwd)  # relative to the repository, or absolute
DATASET=${DATASET:-resume}
RESULTS=/tmp/results WORK=/tmp/runs LOG=$OUT/log.txt
mkdir -p "$RESULTS"
pack() {
  cp "$WORK/$DATASET"/commands.log "$RESULTS"/ 2>/dev/null
  cp "$WORK/$DATASET"/cache/index.json "$RESULTS"/cache-index.json 2>/dev/null
  tar czf "$OUT"/results.tgz --exclude=onnx -C /tmp results  # the report's ONNX exports stay there
}
trap pack EXIT
{ date -u; nvidia-smi; lscpu; python3 -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|onnx|onnxruntime|numpy|tokenizers) "; } > "$RESULTS"/machine.txt 2>&1
source "$ROOT"/benchmarks/gpu_install.sh "$BUNDLE"/wheels
# The experiment files read ../shared/data, which the machine lacks: the bundle's copy takes its place.
[ -e "$ROOT"/../shared/data ] || { mkdir -p "$ROOT"/../shared && ln -sfn "$BUNDLE"/data "$ROOT"/../shared/data; }
python3 "$ROOT"/benchmarks/gpu_bundle.py rebuild "$BUNDLE" "$WORK"/e5 >> "$LOG" 2>&1 || exit 1
sets=(--set "teacher.model=\"$WORK/e5\"")
for word in ${TEACHER:-epochs=4}; do sets+=(--set "teacher.$word"); done
for word in ${STUDENT:-epochs=6 patience=8}; do sets+=(--set "student.$word"); done
for word in ${BENCHMARK:-variants=[\"torch\",\"bf16\",\"onnx-int8\"] throughput_repeats=2 timeout=90 rounds=1}; do
  sets+=(--set "benchmark.$word")
done
timeout "${LIMIT:-530}" python3 "$ROOT"/benchmarks/experiment.py "$ROOT/benchmarks/experiments/$DATASET.toml" \
  --only "${ROWS-hard,kd-unlabeled-bigrams}" --seeds 13 --jobs 2 --work "$WORK" --results "$RESULTS" \
  "${sets[@]}" ${RUN_OPTIONS:-} >> "$LOG" 2>&1
echo "experiment.py exit status $? after $SECONDS s" >> "$LOG"
