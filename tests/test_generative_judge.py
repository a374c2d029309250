"""JudgeLM-style SFT data from teacher judgments: swap augmentation, reference support and drop."""

from __future__ import annotations

from test_llm_judge import ScriptedJudgeEngine

from synthloop.judges.base import PairItem, Preference
from synthloop.judges.generative import build_judge_sft_data, judge_sft_records
from synthloop.judges.llm_judge import LLMJudge
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
