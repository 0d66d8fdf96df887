#!/usr/bin/env bash
# One dataset's whole comparison (benchmarks/run_dataset.py) on a lent GPU machine that reaches no
# network, from a bundle written here by `python benchmarks/gpu_bundle.py prepare BUNDLE` and carried
# there. The models stay there; the tables, logs and report come back as $OUT/results.tgz, and the
# progress as $OUT/log.txt. Settings (environment variables, defaults in brackets):
#   BUNDLE [.device]  DATASET [resume]  ROWS [hard,kd-unlabeled-bigrams; empty: the teacher alone]
#   TEACHER_OPTIONS ["--epochs 4"]  STUDENT_OPTIONS ["--epochs 6 --patience 8"]
#   BENCHMARK_OPTIONS ["--variants torch,bf16,onnx-int8 --repeats 2 --timeout 90"]
#   RUN_OPTIONS [none]: more run_dataset.py options, e.g. --skip-benchmark
#   LIMIT [530]: seconds for run_dataset.py, so the results are packed before the call's own limit.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=$(cd "$ROOT" && cd "${BUNDLE:-.device}" && pwd)  # relative to the repository, or absolute
DATASET=${DATASET:-resume}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$BUNDLE/site:$ROOT XDG_CACHE_HOME=/tmp/xdg
RESULTS=/tmp/results WORK=/tmp/runs/$DATASET LOG=$OUT/log.txt
mkdir -p "$RESULTS"
pack() {
  cp "$WORK"/commands.log "$WORK"/timings.json "$RESULTS"/ 2>/dev/null
  cp "$WORK"/teacher/train_log.jsonl "$RESULTS"/teacher-train_log.jsonl 2>/dev/null
  cp "$WORK"/cache/index.json "$RESULTS"/cache-index.json 2>/dev/null
  for d in "$WORK"/students/*/; do cp "$d"/train_log.jsonl "$RESULTS/$(basename "$d").train_log.jsonl" 2>/dev/null; done
  tar czf "$OUT"/results.tgz --exclude=onnx -C /tmp results  # the report's ONNX exports stay there
}
trap pack EXIT
{ date -u; nvidia-smi; lscpu; python3 -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|onnx|onnxruntime|numpy|tokenizers) "; } > "$RESULTS"/machine.txt 2>&1
# run_dataset.py reads ../shared/data, which the machine lacks: the bundle's copy takes its place.
[ -e "$ROOT"/../shared/data ] || { mkdir -p "$ROOT"/../shared && ln -sfn "$BUNDLE"/data "$ROOT"/../shared/data; }
python3 "$ROOT"/benchmarks/gpu_bundle.py rebuild "$BUNDLE" /tmp/e5 >> "$LOG" 2>&1 || exit 1
timeout "${LIMIT:-530}" python3 "$ROOT"/benchmarks/run_dataset.py "$DATASET" --seeds 1 --jobs 2 \
  --rows "${ROWS-hard,kd-unlabeled-bigrams}" --work "$WORK" --results "$RESULTS" --rounds 1 \
  --teacher-options "--model /tmp/e5 ${TEACHER_OPTIONS:---epochs 4}" \
  --student-options "${STUDENT_OPTIONS:---epochs 6 --patience 8}" \
  --benchmark-options "${BENCHMARK_OPTIONS:---variants torch,bf16,onnx-int8 --repeats 2 --timeout 90}" ${RUN_OPTIONS:-} >> "$LOG" 2>&1
echo "run_dataset.py exit status $? after $SECONDS s" >> "$LOG"
