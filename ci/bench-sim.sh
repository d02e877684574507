#!/usr/bin/env bash
# Simulation speed of the full stack on both engines, as one markdown table: simulated seconds
# per wall second (and its ratio to the 1000x target and the 300x floor), trace events per wall
# second, seeds per hour on one core, peak RSS, and madsim's speed over turmoil's.
#
# Usage: ci/bench-sim.sh [SCENARIOS] [SEEDS] [TURMOIL_SEEDS]
#   (defaults: steady,kill-az 0..3 0..1: turmoil runs the standard stack some ten times slower,
#   so it gets one seed unless told otherwise)
# Runs one seed at a time on one core: turmoil first (plain release build of the bench), then
# madsim (`cargo chaos bench`), which prints the combined table last. The JSON of each engine's
# figures stays in target/bench-sim/.
set -euo pipefail
cd "$(dirname "$0")/.."

scenarios="${1:-steady,kill-az}"
seeds="${2:-0..3}"
turmoil_seeds="${3:-0..1}"
out="$PWD/target/bench-sim"
mkdir -p "$out"

echo "== turmoil: $scenarios, seeds $turmoil_seeds"
cargo bench --quiet -p scenarios --bench turmoil_engine -- "$scenarios" "$turmoil_seeds" --json "$out/turmoil.json"
echo
echo "== madsim: $scenarios, seeds $seeds"
cargo chaos bench --scenario "$scenarios" --seeds "$seeds" --json "$out/madsim.json" --against "$out/turmoil.json"
