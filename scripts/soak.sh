#!/usr/bin/env bash
# Soak: run the remote test suite many times in a row, stopping at the first failure.
#
#   scripts/soak.sh [RUNS] [pytest options]      # RUNS defaults to 100
#
# The remote suite is every test that runs real services over real sockets: tests/services,
# tests/transport and tests/faults, without the tests marked slow (the 1000-volume fault
# campaign and the benchmark smoke run; run the campaign on its own, longer, with e.g.
#   RTCLOUD_CAMPAIGN_VOLUMES=4000 RTCLOUD_CAMPAIGN_SEED=7 \
#     .venv/bin/python -m pytest tests/faults/test_campaign.py -s
# ). Each run's output goes to $SOAK_LOG_DIR (default .cache/soak/run-N.log); the last lines
# of a failing run are printed. Needs the .venv the README's test command creates.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-100}"
shift || true
py=.venv/bin/python
if [ ! -x "$py" ]; then
  echo "no .venv: run the README's test command (python3 scripts/bootstrap.py test) once" >&2
  exit 2
fi
logs="${SOAK_LOG_DIR:-.cache/soak}"
mkdir -p "$logs"
suite=(tests/services tests/transport tests/faults)
begin=$(date +%s)
for ((i = 1; i <= runs; i++)); do
  start=$(date +%s)
  if ! "$py" -m pytest -q -x -p no:cacheprovider -m "not slow" "${suite[@]}" "$@" \
      >"$logs/run-$i.log" 2>&1; then
    echo "run $i of $runs FAILED after $(($(date +%s) - start)) s; log: $logs/run-$i.log"
    tail -40 "$logs/run-$i.log"
    exit 1
  fi
  echo "run $i of $runs passed in $(($(date +%s) - start)) s ($(tail -1 "$logs/run-$i.log"))"
done
echo "all $runs runs passed in $(($(date +%s) - begin)) s"
