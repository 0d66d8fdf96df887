# Sourced by benchmarks/gpu_run.sh and tests/gpu_suite.sh on a lent GPU machine (no network, its
# own Python): installs the wheels in $1 into /tmp/site and this project editable, as `make install`
# does here (data/, teacher/ and student/ install as distill.data, distill.teacher, distill.student).
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=/tmp/site XDG_CACHE_HOME=/tmp/xdg
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$1"/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
