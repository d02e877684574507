#!/usr/bin/env bash
# Every unsafe config must be caught: a sweep of it fails, and fails with the violation kind its
# checker exists for. Each row: scenario, unsafe config, the kind that must appear, and the seeds
# to sweep when the default range is too narrow for a rare failure.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${CHAOS_UNSAFE_SEEDS:-0..60}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

while read -r scenario config seeds kind; do
    [ -n "$scenario" ] || continue
    [ "$seeds" = - ] && seeds="$SEEDS"
    if cargo chaos sweep --scenario "$scenario" --config "$config" --seeds "$seeds" --jobs 2 \
        --out "$work/$config" > "$work/$config.txt" 2>&1; then
        echo "error: $scenario --config $config passed every seed of $seeds: its checker caught nothing" >&2
        exit 1
    fi
    python3 - "$work/$config/summary.json" "$kind" "$scenario" "$config" <<'PY'
import json, sys
summary, kind, scenario, config = sys.argv[1:]
runs = json.load(open(summary))["runs"]
caught = [r["seed"] for r in runs if any(v["kind"] == kind for v in r["violations"])]
if not caught:
    kinds = sorted({v["kind"] for r in runs for v in r["violations"]})
    sys.exit(f"error: {scenario} --config {config} failed, but never with `{kind}` (found: {kinds})")
print(f"{scenario} --config {config}: `{kind}` caught in {len(caught)} of {len(runs)} seeds (first: seed {caught[0]})")
PY
done <<'TABLE'
postgres-failover async-credentials   -      lost commit
postgres-failover pg-ack-before-fsync 0..50  lost commit
postgres-failover pg-no-watchdog      0..100 split brain
postgres-failover pg-send-unflushed   -      replica ahead of primary
postgres-failover pg-skip-rewind      -      replicas diverged
postgres-pitr     pitr-stop-late      -      pitr past target
redis-failover    redis-stale-client  -      write to demoted master
redis-failover    redis-one-sentinel  -      failover without quorum
redis-failover    redis-elect-on-quorum -    failover without majority
redis-failover    redis-get-seeks     -      cache served wrong data
redis-failover    redis-read-before-expire - expired key served
redis-failover    redis-no-follow     -      clients did not follow
mongo-failover    mongo-w1            -      lost write
mongo-failover    mongo-ack-before-fsync -   lost write
mongo-failover    mongo-ignore-fence  0..200 split lock
mongo-failover    mongo-dry-run-elects -     split brain
kafka-partition   kafka-acks1-unclean -      lost record
kafka-partition   kafka-late-commits  0..800 committed offset regressed
postgres-failover pg-replica-reads    0..20  not linearizable
postgres-failover pg-replica-reads    0..20  G-single-realtime
mongo-failover    mongo-local-reads   -      not linearizable
kafka-partition   kafka-inflight-no-idempotence - reordered record
kafka-partition   kafka-no-dedup      -      duplicate record
kill-az           fresh-op-ids        0..1   duplicate op
kill-az           overwrite-snapshot  0..1   snapshot changed
kill-az           commit-before-persist 0..10 offset skipped unpersisted
kill-az           ack-before-durable  0..2   lost edit
TABLE
