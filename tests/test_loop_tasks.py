"""Task sources: the arithmetic generator (exact references, the difficulty knob, determinism) and the
round's task slice (fresh tasks per round, wrap-around on a finite dataset, held-out prompts excluded)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from synthloop.configs import ConfigError, load_config
from synthloop.judges.verifiers import MathAnswerVerifier
from synthloop.loops.config import LoopConfig
from synthloop.loops.stages import TasksStage, eval_tasks
from synthloop.loops.tasks import ArithmeticTasks, DatasetTasks
from synthloop.runs.jsonl import read_jsonl

GSM8K = __import__("conftest").SHARED / "gsm8k" / "test.jsonl"


def _solve(prompt: str) -> int:
    """An independent reading of the story: the first number, then each step's operation."""
    import re

    sentences = re.split(r"(?<=\.)\s", prompt)
    value = int(re.findall(r"\d+", sentences[0])[0])
    for s in sentences[1:]:
        numbers = [int(n) for n in re.findall(r"\d+", s)]
        if not numbers:
            continue
        b = numbers[0]
        if "times" in s:
            value *= b
        elif "equal" in s:
            value //= b
        elif re.search(r"gives \d+ [\w ]+ to ", s) or any(w in s for w in ("loses", "sells", "takes")):
            value -= b
        else:
            value += b
    return value


@pytest.mark.parametrize("knobs", [
    {"digits": 1, "operations": 1},
    {"digits": 3, "min_digits": 2, "operations": 4, "min_operations": 2, "skills": ["add", "sub", "mul", "div"]},
])
def test_arithmetic_problems_have_exact_answers_and_follow_the_knob(knobs):
    tasks = list(ArithmeticTasks(count=300, seed=5, **knobs).rows())
    assert tasks == list(ArithmeticTasks(count=300, seed=5, **knobs).rows())  # problem i is fixed by the seed
    assert tasks != list(ArithmeticTasks(count=300, seed=6, **knobs).rows())
    verifier = MathAnswerVerifier()
    for task in tasks:
        assert int(task["reference"]) > 0 and str(_solve(task["prompt"])) == task["reference"], task
        assert knobs.get("min_operations", 1) <= task["operations"] <= knobs["operations"]
        assert set(task["skills"]) <= set(knobs.get("skills", ["add", "sub"]))
        assert verifier.verify(f"So the answer is {task['reference']}.", task["reference"]).passed
    if "mul" in knobs.get("skills", []):
        assert {"add", "sub", "mul", "div"} <= {s for t in tasks for s in t["skills"]}  # skills are mixed


def test_arithmetic_knob_is_validated():
    with pytest.raises(ValueError, match="min_digits"):
        ArithmeticTasks(digits=1, min_digits=2)
    with pytest.raises(ValueError):
        ArithmeticTasks(skills=["pow"])


def _ctx(tmp_path, config: LoopConfig, round_: int):
    (tmp_path / f"round-{round_:03d}").mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(config=config, round=round_, run_dir=tmp_path, dir=tmp_path / f"round-{round_:03d}")


def test_round_tasks_are_fresh_wrap_around_and_never_held_out(tmp_path):
    small = tmp_path / "small.jsonl"
    rows = [{"question": f"What is {i} plus 1?", "answer": f"#### {i + 1}"} for i in range(10)]
    small.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = {"kind": "dataset", "path": str(small), "prompt_column": "question", "reference_column": "answer"}
    config = LoopConfig.model_validate({"tasks": {"train": source, "eval": {**source, "limit": 3},
                                                  "per_round": 4, "eval_count": 3}})
    held_out = [r["prompt"] for r in eval_tasks(_ctx(tmp_path, config, 0))]
    assert held_out == ["What is 0 plus 1?", "What is 1 plus 1?", "What is 2 plus 1?"]
    seen = []
    for round_ in (1, 2, 3):
        ctx = _ctx(tmp_path, config, round_)
        out = TasksStage().run(ctx)
        prompts = [r["prompt"] for r in read_jsonl(ctx.dir / "tasks.jsonl")]
        assert out["count"] == len(prompts) == 4 and not set(prompts) & set(held_out)
        seen.append(prompts)
    # 7 usable rows: round 1 takes rows 0-3 of them, round 2 rows 4-6 then wraps to row 0, round 3 continues
    assert seen[0] == [f"What is {i} plus 1?" for i in (3, 4, 5, 6)]
    assert sorted(seen[1]) == sorted(f"What is {i} plus 1?" for i in (7, 8, 9, 3))
    assert len(set(seen[2])) == 4
    row = next(read_jsonl(tmp_path / "round-001" / "tasks.jsonl"))
    assert row["reference"] == "#### 4" and row["task_id"] == "train-3"  # its row in the source


def test_gsm8k_is_a_task_source():
    rows = list(DatasetTasks(path=GSM8K, prompt_column="question", reference_column="answer", limit=2).rows())
    assert rows[0]["prompt"].startswith("Janet") and rows[0]["reference"].endswith("#### 18")
    with pytest.raises(KeyError, match="set prompt_column"):
        next(DatasetTasks(path=GSM8K).rows())


def test_shipped_loop_configs_are_valid():
    from helpers import ROOT

    for name in ("quickstart", "quickstart_full", "gsm8k_loop"):
        config = load_config(LoopConfig, ROOT / "configs" / "loop" / f"{name}.yaml")
        assert config.rounds >= 2 and config.judges
    with pytest.raises(ConfigError, match="sampling.n must be at least 2"):
        load_config(LoopConfig, ROOT / "configs" / "loop" / "quickstart.yaml", ["train.plan=[dpo]", "sampling.n=1"])
