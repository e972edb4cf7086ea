#!/usr/bin/env bash
# One GPU check in one command, on a machine with one NVIDIA GPU and no network:
#   1. installs the wheels carried in .whl/ (gathered here by `python bench/gpu_wheels.py`) into /tmp/site,
#   2. runs bench/gpu_check.py (arguments pass through, e.g. --budget-s 420 or --steps calibration,throughput),
#   3. copies the JSON it wrote (bench/results/gpu_check.json unless --out says otherwise) and the log to $OUT when set.
# The JSON is rewritten after every row, so whatever stops the run early, the figures so far are in it.
set -u
cd "$(dirname "$0")/.."
mkdir -p bench/results
log=bench/results/gpu_check.log
if compgen -G ".whl/*.whl" >/dev/null; then
    if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
        if ! python3 -c "import datasets, trl" 2>/dev/null && compgen -G ".whl/fallback/*.whl" >/dev/null; then
            echo "gpu check: datasets does not import with this machine's packages; installing .whl/fallback/ in its place" >&2
            rm -rf /tmp/site/datasets /tmp/site/datasets-*.dist-info  # one version of each
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/fallback/*.whl
        fi
    else
        echo "gpu check: installing the carried wheels failed; running with what the machine has" >&2
    fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
python3 bench/gpu_check.py "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
written=$(sed -n 's/^wrote //p' "$log" | tail -1)  # the JSON's path (--out may name another)
if [ -n "${OUT:-}" ]; then
    cp "${written:-bench/results/gpu_check.json}" "$log" "$OUT"/
fi
exit "$status"
