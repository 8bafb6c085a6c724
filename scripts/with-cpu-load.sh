#!/usr/bin/env bash
# Run a command beside a bounded CPU load: one busy loop per core, so timing races in the tests
# show up. The loops stop when the command ends (Ctrl-C too), and after LOAD_SECONDS at the
# latest even if this script is killed outright. Used by `make test-flaky`.
#
#   scripts/with-cpu-load.sh .venv/bin/python -m pytest tests/integration --count=3
#   LOAD_PROCS=4 LOAD_SECONDS=600 scripts/with-cpu-load.sh CMD...
set -euo pipefail

procs=${LOAD_PROCS:-$(nproc)}
seconds=${LOAD_SECONDS:-7200}
pids=()

stop_load() {
  if ((${#pids[@]})); then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop_load EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for ((i = 0; i < procs; i++)); do
  # timeout: the hard bound; it also passes our kill on to the loop.
  timeout "$seconds" bash -c 'while :; do :; done' &
  pids+=("$!")
done
echo "with-cpu-load: $procs busy loops (pids ${pids[*]}), stopped after the command or ${seconds}s" >&2
"$@"
