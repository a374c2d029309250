"""One judge spec everywhere: the same `{kind: ...}` section is accepted by a loop's judges, `synthloop filter`,
`synthloop compile` and `synthloop judge score`, and a loop on the tiny model filters its samples with it."""

from __future__ import annotations

import math

import pytest
from helpers import ROOT

from synthloop.configs import ConfigError, load_config
from synthloop.judges.commands import JudgeScoreConfig
from synthloop.judges.filters import FilterRunConfig
from synthloop.judges.panel import Panel
from synthloop.loops import run_loop
from synthloop.loops.config import LoopConfig
from synthloop.loops.judging import iter_judged
from synthloop.synth.compile import CompileConfig

TINY = {"kind": "transformers", "model": "tiny-random-chat"}
SEEDS = str(ROOT.parent / "shared" / "data" / "self_instruct" / "seed_tasks.jsonl")


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory):
    from synthloop.judges.reward_model import RewardModel

    path = tmp_path_factory.mktemp("rm") / "model"
    RewardModel.create(max_prompt_tokens=16, max_response_tokens=16, inference_dtype="float32").save(path)
    return path


def specs(rm: str) -> dict[str, dict]:
    return {
        "reward_model": {"kind": "reward_model", "path": rm, "min_score": -100.0},
        "llm": {"kind": "llm", "engine": TINY, "sampling": {"max_tokens": 40}, "rationale_chars": 4, "min_score": 1},
        "ifeval": {"kind": "ifeval", "loose": True},
        "math_answer": {"kind": "math_answer", "weight": 2.0},
        "length": {"kind": "length", "min_score": 0.8},
        "python": {"kind": "python", "factory": "loop_judges:make"},
    }


def loop_data(out, judges) -> dict:
    return {"output_dir": str(out), "engine": {**TINY, "batch_size": 64},
            "tasks": {"train": {"kind": "arithmetic", "seed": 1}, "eval": {"kind": "arithmetic", "seed": 2},
                      "eval_count": 6, "per_round": 4},
            "prompt": {"template": "{prompt}\nEnd with: The answer is N."},
            "sampling": {"n": 3, "max_tokens": 12, "temperature": 1.0}, "eval": {"max_tokens": 12},
            "judges": judges, "recipe": {"kind": "expert_iteration", "include_truncated": True},
            "train": {"plan": ["sft"], "sft": {"max_steps": 1, "batch_size": 4}}, "rounds": 1, "concurrency": 8,
            "plot": False}


@pytest.mark.parametrize("kind", ["reward_model", "llm", "ifeval", "math_answer", "length", "python"])
def test_every_place_that_takes_judges_accepts_the_same_spec(kind, reward_model_dir, tmp_path):
    spec = specs(str(reward_model_dir))[kind]
    loop = load_config(LoopConfig, data=loop_data(tmp_path, [spec]))
    flt = load_config(FilterRunConfig, data={"input": {"path": str(tmp_path)},
                                              "filters": [{"kind": "judge_threshold", "judge": spec}]})
    comp = load_config(CompileConfig, data={"program": {"kind": "self_instruct", "seed_tasks": SEEDS},
                                            "metric": spec})
    score = load_config(JudgeScoreConfig, data={"input": {"path": str(tmp_path)}, "judge": spec})
    assert loop.judges[0] == flt.filters[0].judge == comp.metric == score.judge
    assert type(loop.judges[0]).__name__ == type(score.judge).__name__
    with Panel.from_specs([spec]) as panel:  # every spec builds (model-backed ones start nothing until asked)
        assert len(panel.judges) == 1 and panel.weights == [spec.get("weight", 1.0)]


def test_a_bad_spec_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"judges\.0\.llm\.sampling\.temprature: unknown key; did you mean "
                                          r"'temperature'\?"):
        load_config(LoopConfig, data=loop_data(tmp_path, [{"kind": "llm", "sampling": {"temprature": 0}}]))
    with pytest.raises(ConfigError, match="judges.0: .*'nope'"):
        load_config(LoopConfig, data=loop_data(tmp_path, [{"kind": "nope"}]))


def test_a_loop_filters_its_samples_with_an_llm_judge_and_a_reward_model(reward_model_dir, tmp_path):
    """The trained judge and an LLM judge in a loop, as config (no python factory): every sample carries both scores,
    and it is accepted exactly when both judges' rules accept it."""
    rm = {"kind": "reward_model", "path": str(reward_model_dir), "min_score": 0.0}
    llm = {"kind": "llm", "engine": TINY, "sampling": {"max_tokens": 40}, "rationale_chars": 4, "min_score": 3}
    config = LoopConfig.model_validate(loop_data(tmp_path, [rm, llm]))
    summary = run_loop(config, tmp_path / "loop", progress=False)
    assert summary["rounds_done"] == 1
    samples = [s for r in iter_judged(tmp_path / "loop" / "round-001" / "judged") for s in r["samples"]]
    assert len(samples) == 4 * 3
    scored = [s["scores"]["llm"] for s in samples if not math.isnan(s["scores"]["llm"])]
    assert len(scored) >= len(samples) // 2  # constrained decoding: the random model's verdicts parse
    for s in samples:
        rm_score, llm_score = s["scores"]["reward_model"], s["scores"]["llm"]
        expected = (rm_score >= 0.0) and not math.isnan(llm_score) and llm_score >= 3
        assert s["accepted"] == expected
        assert s["score"] == pytest.approx((rm_score + llm_score) / 2, nan_ok=True)
