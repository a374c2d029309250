"""The generative judge (JudgeLM): SFT data from teacher judgments (swap augmentation, reference support and
drop), training through TRL into a judge artifact, and judging with it (parsing, swap, failures, pointwise)."""

from __future__ import annotations

import json

import pytest
from helpers import ScriptedEngine, run_cli, write_config
from test_llm_judge import ScriptedJudgeEngine

from synthloop.engines.types import EngineError
from synthloop.judges.base import JudgeItem, PairItem, Preference
from synthloop.judges.generative import build_judge_sft_data, judge_sft_records
from synthloop.judges.generative_judge import GenerativeJudge, parse_scores
from synthloop.judges.generative_train import label_verdicts
from synthloop.judges.llm_judge import LLMJudge
from synthloop.judges.panel import Panel
from synthloop.runs.run_dir import RunDir


def test_records_swap_scores_and_drop_references():
    pairs = [PairItem(prompt=f"q{i}", a=f"A{i}", b=f"B{i}", reference="gold" if i < 50 else None) for i in range(100)]
    verdicts = [Preference(winner="a", score_a=8, score_b=3, rationale="Assistant 1 is right; Assistant 2 is not.")
                for _ in pairs]
    records = judge_sft_records(pairs, verdicts, swap=True, reference_drop=0.5, seed=0)
    assert len(records) == 200
    first, swapped = records[0], records[1]
    assert first["messages"][2]["content"].startswith("8 3\nAssistant 1 is right")
    assert swapped["messages"][2]["content"] == "3 8\nAssistant 2 is right; Assistant 1 is not."
    user = swapped["messages"][1]["content"]
    assert user.index("B0") < user.index("A0")  # the answers really are exchanged
    with_ref = [r for r in records if r["pair"] < 50]
    shown = sum(r["reference"] == "shown" for r in with_ref)
    assert 30 < shown < 70 and all(("Reference Answer" in r["messages"][1]["content"]) == (r["reference"] == "shown")
                                   for r in records)
    assert all(r["reference"] == "none" for r in records if r["pair"] >= 50)
    failed = judge_sft_records(pairs[:1], [Preference(winner="tie", rationale="judge failed: x")])
    assert failed == []


def test_build_from_a_teacher_into_a_run(tmp_path):
    teacher = LLMJudge(ScriptedJudgeEngine(lambda a, b: (9, 4) if "good" in a else (4, 9)), swap=True)
    pairs = [PairItem(prompt="q", a="good answer", b="poor"), PairItem(prompt="r", a="poor", b="good one")]
    run = build_judge_sft_data(pairs, teacher, tmp_path / "sft", reference_drop=0.0)
    records = list(RunDir(run).iter_records())
    assert [r["messages"][2]["content"].split("\n")[0] for r in records] == ["9 4", "4 9", "4 9", "9 4"]
    assert records[0]["provenance"]["teacher"]["judge"] == "llm"


# -- the generative judge: training (TRL SFT) and judging with the fine-tuned checkpoint ---------------------
HH = "../shared/data/hh_rlhf/harmless-base_test.jsonl.gz"


def _answers(user: str) -> tuple[str, str]:
    one = user.split("[The Start of Assistant 1's Answer]\n")[1].split("\n[The End of Assistant 1's Answer]")[0]
    two = user.split("[The Start of Assistant 2's Answer]\n")[1].split("\n[The End of Assistant 2's Answer]")[0]
    return one, two


class ScriptedTextEngine(ScriptedEngine):
    """Answers the JudgeLM prompt with text chosen by a rule over the two answers (parsing and control flow only)."""

    def __init__(self, rule):
        super().__init__(lambda user: rule(*_answers(user)))
        self.rule = rule


PAIRS = [PairItem(prompt=f"question {i}", a=f"answer one {i}", b=f"answer two {i}") for i in range(4)]


def test_parse_scores():
    assert parse_scores("8 3\nAssistant 1 is better.") == (8.0, 3.0)
    assert parse_scores(" 7.5 10") == (7.5, 10.0)
    assert parse_scores("9,2") == (9.0, 2.0)
    assert parse_scores("Assistant 1 gets 8") is None
    assert parse_scores("") is None


def test_judge_parses_maps_orders_and_swaps_position_bias_into_ties():
    always_first = ScriptedTextEngine(lambda one, two: "9 2")
    plain = GenerativeJudge(always_first, swap=False).compare(PAIRS)
    assert [p.winner for p in plain] == ["a"] * 4 and plain[0].score_a == 9 and plain[0].score_b == 2
    swapped = GenerativeJudge(always_first, swap=True).compare(PAIRS)
    assert [p.winner for p in swapped] == ["tie"] * 4 and all("disagree" in p.rationale for p in swapped)
    later = always_first.requests[4:]
    assert len(later) == 8 and _answers(later[1].messages[-1]["content"]) == ("answer two 0", "answer one 0")
    assert later[0].sampling.stop == ("\n",) and later[0].sampling.temperature == 0.0

    prefers_two = ScriptedTextEngine(lambda one, two: "3 8\nAssistant 2 wins." if "two" in two else "8 3\nx")
    verdicts = GenerativeJudge(prefers_two, swap=True).compare(PAIRS)
    assert [p.winner for p in verdicts] == ["b"] * 4 and verdicts[0].score_b == 8
    assert verdicts[0].rationale == "Assistant 2 wins."


def test_unparseable_or_failed_verdicts_become_ties_not_crashes():
    garbage = GenerativeJudge(ScriptedTextEngine(lambda one, two: "I think the first"), swap=False).compare(PAIRS[:2])
    assert [p.winner for p in garbage] == ["tie", "tie"]
    assert garbage[0].rationale.startswith("judge failed: unparseable verdict 'I think the first'")
    broken = GenerativeJudge(ScriptedTextEngine(lambda one, two: EngineError("out of memory")), swap=True)
    assert [p.winner for p in broken.compare(PAIRS[:2])] == ["tie", "tie"]
    scores = broken.score([JudgeItem(prompt="q", response="r")])
    assert scores[0].score != scores[0].score and "out of memory" in scores[0].rationale  # NaN, marked
    half = GenerativeJudge(ScriptedTextEngine(lambda one, two: "7 2" if "one" in one else "oops"), swap=True)
    verdict = half.compare(PAIRS[:1])[0]
    assert verdict.winner == "tie" and "one order failed" in verdict.rationale


def test_pointwise_grades_against_the_reference_or_an_empty_answer():
    engine = ScriptedTextEngine(lambda one, two: "10 6" if one == "Paris" else "1 7")
    judge = GenerativeJudge(engine)
    out = judge.score([JudgeItem(prompt="Capital of France?", response="Paris, I think", reference="Paris"),
                       JudgeItem(prompt="Capital of France?", response="Lyon")])
    assert [j.score for j in out] == [6.0, 7.0]
    assert "[The Start of Reference Answer]\nParis" in engine.requests[0].messages[-1]["content"]
    assert _answers(engine.requests[1].messages[-1]["content"]) == ("(no answer)", "Lyon")
    dropped = GenerativeJudge(engine, reference="drop").score([JudgeItem(prompt="q", response="r", reference="Paris")])
    assert dropped[0].score == 7.0


def test_label_teacher_explains_honestly_and_swaps_with_the_answers():
    pairs = [PairItem(prompt="q", a="chosen", b="rejected"), PairItem(prompt="q", a="rejected", b="chosen")]
    verdicts = label_verdicts([False, True], (8.0, 3.0))
    assert [v.winner for v in verdicts] == ["a", "b"]
    records = judge_sft_records(pairs, verdicts, swap=True)
    replies = [r["messages"][2]["content"] for r in records]
    assert replies == ["8 3\nHuman annotators preferred Assistant 1.", "3 8\nHuman annotators preferred Assistant 2.",
                       "3 8\nHuman annotators preferred Assistant 2.", "8 3\nHuman annotators preferred Assistant 1."]


def test_train_command_writes_a_judge_artifact_that_loads_and_judges(tmp_path):
    cfg = write_config(tmp_path / "gen.yaml", {
        "kind": "generative", "output_dir": str(tmp_path), "data": {"hh_rlhf": HH, "limit": 4},
        "generative": {"base_model": "tiny-random-chat", "max_input_chars": 120,
                       "sft": {"max_steps": 1, "batch_size": 4, "max_length": 256}}})
    result = run_cli("judge", "train", str(cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    model = tmp_path / "gen" / "model"
    artifact = json.loads((model / "judge.json").read_text())
    assert artifact["kind"] == "generative_judge" and artifact["teacher"]["judge"] == "labels"
    assert artifact["train_pairs"] == 4 and artifact["sft_records"] == 8 and (model / "config.json").is_file()
    metrics = json.loads((tmp_path / "gen" / "metrics.json").read_text())
    assert metrics["steps"] == 1 and metrics["loss_first"] > 0 and metrics["teacher_agrees_with_labels"] == 1.0
    data = [json.loads(line) for line in (tmp_path / "gen" / "sft_data.jsonl").read_text().splitlines()]
    assert data[0]["messages"][2]["content"].split("\n")[0] in ("8 3", "3 8")

    spec = {"kind": "generative", "path": str(model), "engine": {"kind": "transformers"},
            "sampling": {"max_tokens": 6}}
    cache = tmp_path / "judge_cache.sqlite"
    with Panel.from_specs([spec], cache_path=cache) as panel:  # the random tiny model's verdicts do not parse: ties
        judge = panel.judges[0]
        prefs = judge.compare(PAIRS[:2])
        assert len(prefs) == 2 and all(p.winner in ("a", "b", "tie") for p in prefs)
        assert judge.max_chars == 120  # the judge cuts inputs as it was trained
        assert judge.describe()["artifact"]["base_model"] == "tiny-random-chat"
        assert len(judge.score([JudgeItem(prompt="q", response="r")])) == 1
    with Panel.from_specs([spec], cache_path=cache) as panel:  # a resumed run gets the same verdicts from the cache
        judge = panel.judges[0]
        assert judge.compare(PAIRS[:2]) == prefs
        assert all(r.cached for r in judge.engine.generate([judge._request("question 0", "answer one 0",
                                                                            "answer two 0", None, 0)]))


@pytest.mark.parametrize("judge, message", [
    ({"kind": "generative"}, "judge.generative.path: required key is missing"),
    ({"kind": "generative", "path": "{tmp}"}, "not a generative judge (no judge.json"),
])
def test_bad_judge_specs_fail_in_one_line(tmp_path, judge, message):
    judge = {k: v.format(tmp=tmp_path) for k, v in judge.items()}
    cfg = write_config(tmp_path / "e.yaml", {"judge": judge, "output_dir": str(tmp_path),
                                             "data": {"hh_rlhf": HH, "eval_limit": 2}})
    bad = run_cli("judge", "eval", str(cfg))
    assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-1500:]


def test_bad_teacher_fails_in_one_line(tmp_path):
    cfg = write_config(tmp_path / "t.yaml", {"kind": "generative", "generative": {"teacher": "gpt-5"}})
    bad = run_cli("judge", "train", str(cfg))
    assert bad.returncode == 2 and "generative.teacher" in bad.stderr and "Traceback" not in bad.stderr


def test_any_judge_can_teach(tmp_path):
    """An LLM judge as the teacher (the tiny model under constrained JSON decoding: always a parseable verdict)."""
    from synthloop.judges.commands import JudgeTrainConfig
    from synthloop.judges.generative_train import train_generative_judge

    cfg = JudgeTrainConfig.model_validate({
        "kind": "generative", "data": {"hh_rlhf": HH, "limit": 2},
        "generative": {"base_model": "tiny-random-chat", "max_input_chars": 100, "reference_drop": 0.0,
                       "teacher": {"kind": "llm", "engine": {"kind": "transformers", "model": "tiny-random-chat"},
                                   "sampling": {"max_tokens": 48}, "swap": False},
                       "sft": {"max_steps": 1, "batch_size": 4, "max_length": 256}}})
    metrics = train_generative_judge(cfg, tmp_path / "run", log=lambda m: None)
    assert metrics["teacher"]["judge"] == "llm" and metrics["teacher"]["engine"] == "transformers"
    assert metrics["sft_records"] == 2 * (2 - metrics["failed_teacher_verdicts"]) > 0
    artifact = json.loads((tmp_path / "run" / "model" / "judge.json").read_text())
    assert artifact["teacher"]["judge"] == "llm"
    assert (tmp_path / "run" / "teacher_cache.sqlite").exists()  # a rerun does not ask the teacher again
