#!/usr/bin/env bash
# Every benchmark in one go, then benchmarks/RESULTS.md from their outputs.
#
#   benchmarks/run_all.sh            # everything (about an hour on 2 busy cores)
#   STEPS="speed peers" benchmarks/run_all.sh   # some steps, then RESULTS.md again
#
# Needs scripts/setup (the .venv and the ONNX model) and, for the peers,
# benchmarks/peers/setup.sh (run here if their virtualenvs are missing). Data are
# read from $DATA (default ../shared/data, see its README); never copied here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DATA=${DATA:-../shared/data}
OUT=benchmarks/results
CACHE=benchmarks/.cache
STEPS=${STEPS:-"quality ood speed peers"}
PEER_PAIRS=${PEER_PAIRS:-500}  # pairs of QQP dev for the peers' quality (2 requests each)
mkdir -p "$OUT"

has() { [[ " $STEPS " == *" $1 "* ]]; }
log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

if has quality; then
    log "quality: QQP dev, baseline and default verifier, with replay"
    $PY -m reprise bench quality --pairs "$DATA/qqp_dev.jsonl" --out "$OUT" \
        --verifier threshold --verifier default --thresholds 0:0.30:0.02 \
        --replay --replay-threshold 0.1 --replay-limit 6000 \
        --embed-cache "$CACHE" --no-progress > /dev/null
    log "quality: QQP dev sample of $PEER_PAIRS (the peers' pairs)"
    $PY -m reprise bench quality --pairs "$DATA/qqp_dev.jsonl" --limit "$PEER_PAIRS" --out "$OUT/peers-sample" \
        --verifier threshold --verifier default --thresholds 0.03,0.1,0.2,0.4 \
        --embed-cache "$CACHE" --no-progress > /dev/null
fi
if has ood; then
    log "quality: SICK, MRPC, STS-B"
    $PY -m reprise bench quality --sick "$DATA/sick/SICK_train.txt" \
        --mrpc "$DATA/mrpc/msr_paraphrase_train.txt" --stsb "$DATA/stsb/sts-train.csv" \
        --out "$OUT" --verifier threshold --verifier default --thresholds 0:0.30:0.02 \
        --embed-cache "$CACHE" --no-progress > /dev/null
fi
if has speed; then
    log "speed: embedded store"
    $PY -m reprise bench speed --requests 100 --out "$OUT" --name speed-embedded --no-progress > /dev/null
    log "speed: Redis (managed Valkey + RediSearch)"
    $PY -m reprise bench speed --requests 100 --redis-managed --out "$OUT" --name speed-redis \
        --no-progress > /dev/null
fi
if has peers; then
    [ -x benchmarks/peers/.venv-litellm/bin/litellm ] && [ -x benchmarks/peers/.venv-gptcache/bin/python ] \
        || benchmarks/peers/setup.sh
    log "peers: LiteLLM and GPTCache"
    $PY benchmarks/peers/run_peers.py --out "$OUT" --pairs "$DATA/qqp_dev.jsonl" \
        --pairs-limit "$PEER_PAIRS" --no-progress
fi
log "RESULTS.md"
$PY benchmarks/make_results.py "$OUT" benchmarks/RESULTS.md
