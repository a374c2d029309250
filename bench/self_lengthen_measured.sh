cd /work/wt-rec-lengthen
export PYTHONPATH=/work/wt-rec-lengthen SYNTHLOOP_HOME=/work/main/.cache/synthloop
echo "lock acquired $(date -u)"
/work/main/.venv/bin/python bench/self_lengthen.py --set rounds=2 --set 'recipe.targets=[200,400]' \
  --set tasks.per_round=12 --set tasks.eval.max_length=400 --set 'tasks.eval.ruler_lengths=[100,400]' \
  --set eval.max_tokens=640 --set sampling.max_tokens=768 --set engine.dtype=bfloat16 \
  --set train.sft.learning_rate=5e-5 --set train.sft.epochs=2 --set train.sft.max_length=1536
echo "exit $? $(date -u)"
