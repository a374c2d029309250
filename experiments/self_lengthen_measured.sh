#!/usr/bin/env bash
# The measured Self-Lengthen run on SmolLM2-135M-Instruct (CPU; measured: baseline 2.5 min, each round ~20 min,
# most of it SFT): configs/loop/self_lengthen.yaml at a smaller
# size (2 rounds with targets 200 -> 400 words, 12 instructions x 2 drafts per round, 25 held-out prompts,
# vLLM in bf16 everywhere, greedy held-out answers). Run it under the shared lock:
#     flock /tmp/synthloop-heavy.lock bash experiments/self_lengthen_measured.sh
# Figures: bench/results/self_lengthen.json; the run directory: .cache/bench/self_lengthen/ (rerun to resume).
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD SYNTHLOOP_HOME=${SYNTHLOOP_HOME:-/work/main/.cache/synthloop}
echo "lock acquired $(date -u)"
${PYTHON:-/work/main/.venv/bin/python} experiments/self_lengthen.py --set rounds=2 --set 'recipe.targets=[200,400]' \
  --set tasks.per_round=12 --set tasks.eval.max_length=400 --set 'tasks.eval.ruler_lengths=[100,400]' \
  --set eval.max_tokens=640 --set sampling.max_tokens=768 --set engine.dtype=bfloat16 \
  --set train.sft.learning_rate=5e-5 --set train.sft.epochs=2 --set train.sft.max_length=1536 \
  --set eval.temperature=0.0
echo "exit $? $(date -u)"
