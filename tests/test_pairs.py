"""Training data from judged samples: SFT rows from accepted answers, DPO pairs best vs worst of N."""

from __future__ import annotations

from synthloop.judges.base import JudgeItem, VerifierJudge
from synthloop.judges.panel import Member, Panel
from synthloop.judges.verifiers import MathAnswerVerifier
from synthloop.loops.pairs import preference_pairs, sft_examples

PROMPT = [{"role": "user", "content": "Ana has 3 apples and buys 4 more. How many apples does she have?"}]


def _record(task_id, samples):
    return {"id": task_id, "messages": PROMPT, "reference": "7",
            "samples": [{"text": t, "score": s, "accepted": a, "finish_reason": f} for t, s, a, f in samples]}


def test_pairs_are_best_vs_worst_of_n_per_task():
    records = [
        _record(0, [("It is 6.", 0.0, False, "stop"), ("The answer is 7.", 1.0, True, "stop"),
                    ("7 apples", 1.0, True, "stop"), ("Maybe 12.", 0.2, False, "stop")]),
        _record(1, [("The answer is 7.", 1.0, True, "stop"), ("7", 1.0, True, "stop")]),  # no margin: no pair
        _record(2, [("It is 5.", 0.0, False, "stop"), ("It is 9.", 0.0, False, "stop")]),  # nothing accepted
        _record(3, [("The answer is 7.", 1.0, True, "stop"), ("the answer is  7.", 0.0, False, "stop")]),  # same
    ]
    pairs = list(preference_pairs(records))
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair["task_id"] == 0 and pair["prompt"] == PROMPT
    # best: the highest score, earliest on ties; worst: the lowest score
    assert pair["chosen"] == [{"role": "assistant", "content": "The answer is 7."}]
    assert pair["rejected"] == [{"role": "assistant", "content": "It is 6."}]
    assert (pair["score_chosen"], pair["score_rejected"]) == (1.0, 0.0)

    two = list(preference_pairs(records[:1], pairs_per_task=2))
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in two] == [
        ("The answer is 7.", "It is 6."), ("7 apples", "Maybe 12.")]
    # accepted vs rejected pairs whatever the gap; two answers with the same verdict need a gap above min_margin
    assert len(list(preference_pairs(records[:1], min_margin=1.0))) == 1
    same = [_record(6, [("It is 7.", 0.9, True, "stop"), ("The answer is 7.", 0.4, True, "stop")])]
    assert len(list(preference_pairs(same))) == 1
    assert list(preference_pairs(same, min_margin=0.5)) == []  # a gap of exactly 0.5 is not above it
    # a rejected answer never outranks an accepted one, even with a higher combined score (a rank-only reward
    # model's logit can outweigh a failed verifier in the weighted mean)
    mixed = [_record(7, [("Maybe 12.", 2.5, False, "stop"), ("The answer is 7.", 0.6, True, "stop"),
                         ("7", 0.9, True, "stop"), ("It is 6.", 1.2, False, "stop")])]
    (pair,) = preference_pairs(mixed)
    assert (pair["chosen"][0]["content"], pair["rejected"][0]["content"]) == ("7", "It is 6.")
    assert [r["completion"][0]["content"] for r in sft_examples(mixed)] == ["7", "The answer is 7."]
    # without the accepted requirement, a better-scored but rejected answer can be chosen
    loose = list(preference_pairs([_record(5, [("a 1", 0.4, False, "stop"), ("b 2", 0.1, False, "stop")])],
                                  require_accepted=False))
    assert loose[0]["chosen"][0]["content"] == "a 1"


def test_sft_rows_keep_distinct_accepted_answers():
    record = _record(0, [("The answer is 7.", 1.0, True, "stop"), ("The  answer is 7.", 1.0, True, "stop"),
                         ("It is 6.", 0.0, False, "stop"), ("So 7", 1.0, True, "length"), ("7.", 1.0, True, "stop")])
    rows = list(sft_examples([record]))
    assert [r["completion"][0]["content"] for r in rows] == ["The answer is 7.", "7."]
    assert rows[0]["prompt"] == PROMPT and rows[0]["task_id"] == 0
    assert len(list(sft_examples([record], max_per_task=1))) == 1
    assert len(list(sft_examples([record], include_truncated=True))) == 3


def test_panel_accepts_by_verdict_and_ranks_by_weighted_score():
    from loop_judges import DistinctChars

    # a second judge accepting everything (min_score 0), three times the weight
    panel = Panel.from_specs([{"kind": "math_answer"}])
    panel.members.append(Member(DistinctChars(), weight=3.0, min_score=0.0))
    items = [JudgeItem(prompt="q", response="The answer is 7.", reference="7"),
             JudgeItem(prompt="q", response="It is 6.", reference="7")]
    right, wrong = panel.score(items)
    assert right.accepted and not wrong.accepted and wrong.reason.startswith("verifier:math_answer: failed")
    assert right.scores["verifier:math_answer"] == 1.0 and wrong.scores["verifier:math_answer"] == 0.0
    expected = (1.0 + 3.0 * DistinctChars().score(items[:1])[0].score) / 4.0
    assert abs(right.score - expected) < 1e-9
    assert VerifierJudge(MathAnswerVerifier()).name in panel.names


def test_a_judge_that_only_ranks_never_rejects():
    from loop_judges import DistinctChars

    items = [JudgeItem(prompt="q", response="7 7 7 7 7 7 The answer is 7.", reference="7"),
             JudgeItem(prompt="q", response="It is 6.", reference="7")]
    gated = Panel([Member(VerifierJudge(MathAnswerVerifier())), Member(DistinctChars(), min_score=0.9)])
    ranking = Panel([Member(VerifierJudge(MathAnswerVerifier())), Member(DistinctChars(), min_score=0.9, gate=False)])
    assert [v.accepted for v in gated.score(items)] == [False, False]  # DistinctChars scores both below 0.9
    right, wrong = ranking.score(items)
    assert right.accepted and not wrong.accepted and wrong.reason.startswith("verifier:math_answer")
    assert right.scores["distinct_chars"] < 0.9
