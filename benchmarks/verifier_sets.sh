#!/usr/bin/env bash
# The verifier on every set at once: `reprise bench quality` on each held-out set,
# then one summary table (benchmarks/verifier_summary.py) at the default threshold
# and with a fixed threshold instead of the verifier.
#
#   benchmarks/verifier_sets.sh [OUT_DIR]      # default benchmarks/results/verifier
#
# Held-out parts only: our hand-written sets (benchmarks/sets/, evaluation only),
# SICK's trial file, STS-B's dev file, and fold 0 of 5 of QQP dev, MRPC train and the
# LLM paraphrases (the fold scripts/verifier_mix.py keeps out of training).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DATA=${DATA:-../shared/data}
OUT=${1:-benchmarks/results/verifier}
QQP_PAIRS=${QQP_PAIRS:-2000}
mkdir -p "$OUT"
common=(--thresholds 0.1,0.15,0.2,0.25 --verifier threshold --verifier default ${VERIFIERS:-}
        --embed-cache benchmarks/.cache --resamples 200 --no-progress --out "$OUT")
$PY -m reprise bench quality "${common[@]}" \
    --pairs benchmarks/sets/chat_rewordings.jsonl --pairs benchmarks/sets/must_miss.jsonl \
    --sick "$DATA/sick/SICK_trial.txt" --stsb "$DATA/stsb/sts-dev.csv" > /dev/null
$PY -m reprise bench quality "${common[@]}" --fold 0/5 \
    --pairs "$DATA/llm_paraphrases_dev.jsonl" --mrpc "$DATA/mrpc/msr_paraphrase_train.txt" \
    > /dev/null
$PY -m reprise bench quality "${common[@]}" --fold 0/5 --limit "$QQP_PAIRS" \
    --pairs "$DATA/qqp_dev.jsonl" > /dev/null
$PY benchmarks/verifier_summary.py "$OUT"
