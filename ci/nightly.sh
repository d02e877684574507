#!/usr/bin/env bash
# The nightly chaos job: sweeps every scenario over a fresh range of seeds each night (the range
# moves with the date, so nights explore new schedules while any night stays replayable), checks
# determinism on a sample, and leaves the summary, report and replay commands in the output dir.
#
# Usage: ci/nightly.sh [OUT_DIR] [SEEDS_PER_SCENARIO]
# A failing seed prints its replay command; rerun it locally with exactly that command.
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-target/chaos/nightly}"
per="${2:-2000}"
day=$(( $(date -u +%s) / 86400 ))
start=$(( day * per ))
end=$(( start + per ))
echo "nightly chaos: seeds ${start}..${end} (day ${day}), output in ${out}"

status=0
cargo chaos sweep --scenario all --seeds "${start}..${end}" --jobs "$(nproc)" --out "$out" || status=$?
cargo chaos check-determinism --scenario all --seeds "${start}..$(( start + 20 ))" --jobs "$(nproc)" || status=1
echo "report: ${out}/report.md"
exit "$status"
