#!/usr/bin/env bash
# The test tiers, each one pytest run, in the order named: `unit` (tests not marked integration,
# with phases 0-1 of the micro DAG; `make test`) and `integration` (the marker `integration`: the
# whole micro DAG and its re-runs, kill and resume, SLURM, the flaky teacher API, HTTP students).
# Tiers run together share one micro run: $TEACHABLE_MICRO_RUN, or a temp dir removed afterwards.
# A tier that collects no test fails (pytest's exit code 5), as does any other non-zero exit.
# Usage: tests/tiers.sh unit [integration] [-- pytest args]
set -uo pipefail
PYTEST=${PYTEST:-pytest}
declare -A MARKER=([unit]="not integration" [integration]="integration")
tiers=()
while [[ $# -gt 0 && $1 != -- ]]; do
  [[ -n ${MARKER[$1]:-} ]] || { echo "tests/tiers.sh: unknown tier '$1' (the tiers: ${!MARKER[*]})" >&2; exit 2; }
  tiers+=("$1")
  shift
done
[[ ${1:-} == -- ]] && shift
[[ ${#tiers[@]} -gt 0 ]] || { echo "usage: tests/tiers.sh unit [integration] [-- pytest args]" >&2; exit 2; }
if [[ -z ${TEACHABLE_MICRO_RUN:-} && ${#tiers[@]} -gt 1 ]]; then
  shared=$(mktemp -d)
  trap 'rm -rf "$shared"' EXIT
  export TEACHABLE_MICRO_RUN=$shared/micro
fi
for tier in "${tiers[@]}"; do
  start=$SECONDS
  "$PYTEST" -q -rs -m "${MARKER[$tier]}" "$@"
  rc=$?
  echo "tests/tiers.sh: the $tier tier ended with exit code $rc after $((SECONDS - start)) s"
  if [[ $rc -eq 5 ]]; then
    echo "tests/tiers.sh: the $tier tier collected no test: it fails" >&2
  fi
  [[ $rc -eq 0 ]] || exit "$rc"
done
