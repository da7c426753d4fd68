#!/usr/bin/env bash
# Every benchmark in one go, then benchmarks/RESULTS.md (and gateway.md's speed tables)
# from their outputs. About 15 minutes on 2 idle cores.
#
#   benchmarks/run_all.sh                          # everything
#   STEPS="speed peers" benchmarks/run_all.sh      # some steps, then RESULTS.md again
#   STEPS="speed peers" PEER_PAIRS=20 SPEED_ARGS="--concurrency 1 --requests 20 \
#       --concurrency 8 --requests 32" benchmarks/run_all.sh   # a quick check of the scripts
#
# Run it on an otherwise idle machine: the load average is recorded at the start of
# each step, and the ratios to the floors (measured in the same run) are what compare.
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
QUALITY_PAIRS=${QUALITY_PAIRS:-4000}  # seeded sample of QQP dev (23,735 pairs in all)
OOD_PAIRS=${OOD_PAIRS:-1500}          # seeded sample of each of SICK, MRPC, STS-B
PEER_PAIRS=${PEER_PAIRS:-200}         # pairs of QQP dev for the peers' quality (2 requests each)
read -r -a SPEED <<< "${SPEED_ARGS:---concurrency 1 --requests 200 --concurrency 32 --requests 384}"
mkdir -p "$OUT"

has() { [[ " $STEPS " == *" $1 "* ]]; }
log() { echo "== $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*" >&2; }

if has quality; then
    log "quality: QQP dev sample of $QUALITY_PAIRS, baseline and default verifier, with replay"
    $PY -m reprise bench quality --pairs "$DATA/qqp_dev.jsonl" --limit "$QUALITY_PAIRS" --out "$OUT" \
        --verifier threshold --verifier default --thresholds 0:0.30:0.02 \
        --replay --replay-threshold 0.1 --replay-limit 2000 \
        --embed-cache "$CACHE" --no-progress > /dev/null
    log "quality: QQP dev sample of $PEER_PAIRS (the peers' pairs)"
    $PY -m reprise bench quality --pairs "$DATA/qqp_dev.jsonl" --limit "$PEER_PAIRS" --out "$OUT/peers-sample" \
        --verifier threshold --verifier default --thresholds 0.03,0.1,0.2 \
        --embed-cache "$CACHE" --no-progress > /dev/null
fi
if has ood; then
    log "quality: SICK, MRPC, STS-B samples of $OOD_PAIRS"
    $PY -m reprise bench quality --sick "$DATA/sick/SICK_train.txt" \
        --mrpc "$DATA/mrpc/msr_paraphrase_train.txt" --stsb "$DATA/stsb/sts-train.csv" \
        --limit "$OOD_PAIRS" --out "$OUT" --verifier threshold --verifier default \
        --thresholds 0:0.30:0.02 --embed-cache "$CACHE" --no-progress > /dev/null
fi
if has speed; then
    log "speed: floors, then the embedded store and Redis (managed Valkey + RediSearch)"
    $PY -m reprise bench speed "${SPEED[@]}" --store embedded --store redis-managed \
        --out "$OUT" --name speed > /dev/null
fi
if has peers; then
    [ -x benchmarks/peers/.venv-litellm/bin/litellm ] && [ -x benchmarks/peers/.venv-gptcache/bin/python ] \
        || benchmarks/peers/setup.sh
    log "peers: LiteLLM and GPTCache"
    $PY benchmarks/peers/run_peers.py --out "$OUT" --pairs "$DATA/qqp_dev.jsonl" \
        --pairs-limit "$PEER_PAIRS" "${SPEED[@]}" --no-progress
fi
log "RESULTS.md and gateway.md's speed tables"
$PY benchmarks/make_results.py "$OUT" benchmarks/RESULTS.md benchmarks/gateway.md
