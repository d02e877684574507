#!/usr/bin/env bash
# The schedule is an input, and shrinking works, through the CLI as users call it:
# - `run --json` prints the schedule it ran; feeding it back with `--schedule` gives the same trace;
# - an empty schedule passes;
# - the first failing seed of an unsafe config shrinks to at most 3 faults, and the shrunk schedule
#   fails again, with the same violation kind, under `run --schedule`.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

cargo chaos run --scenario postgres-failover --seed 3 --json > "$work/run.json"
cargo chaos run --scenario postgres-failover --seed 3 --schedule "$work/run.json" --json > "$work/again.json"
a=$(field "$work/run.json" trace_hash); b=$(field "$work/again.json" trace_hash)
[ "$a" = "$b" ] || { echo "error: the same schedule fed back gave trace $b, not $a" >&2; exit 1; }
echo "schedule fed back: same trace $a"

echo '[]' > "$work/empty.json"
for s in smoke postgres-failover postgres-pitr redis-failover mongo-failover kafka-partition kill-az; do
    cargo chaos run --scenario "$s" --seed 3 --schedule "$work/empty.json" > "$work/empty-$s.txt" \
        || { cat "$work/empty-$s.txt" >&2; echo "error: $s failed with an empty schedule" >&2; exit 1; }
done
echo "an empty schedule passes"

scenario=postgres-failover config=async-credentials
seed=""
for n in $(seq 0 49); do
    if ! cargo chaos run --scenario $scenario --config $config --seed "$n" > /dev/null; then seed=$n; break; fi
done
[ -n "$seed" ] || { echo "error: no failing seed of $scenario --config $config in 0..50" >&2; exit 1; }
cargo chaos shrink --scenario $scenario --config $config --seed "$seed" --out "$work/shrunk.json" > "$work/shrink.txt"
faults=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))))" "$work/shrunk.json")
[ "$faults" -le 3 ] || { cat "$work/shrink.txt"; echo "error: shrink left $faults faults (at most 3 expected)" >&2; exit 1; }
if cargo chaos run --scenario $scenario --config $config --seed "$seed" --schedule "$work/shrunk.json" --json > "$work/replayed.json"; then
    echo "error: the shrunk schedule of seed $seed passed under run --schedule" >&2; exit 1
fi
python3 -c "
import json,sys
kinds = {v['kind'] for v in json.load(open(sys.argv[1]))['violations']}
sys.exit(0 if 'lost commit' in kinds else 'the shrunk schedule failed without a lost commit: %s' % sorted(kinds))" "$work/replayed.json"
echo "seed $seed of $scenario --config $config shrank to $faults fault(s) and fails again with a lost commit"
