"""Filters on planted data: each drops what it should, keeps the rest, and reports why."""

from __future__ import annotations

import json
import random

import pytest

from synthloop.judges.filters import (
    DecontaminateConfig,
    DiversityConfig,
    ExactDedupConfig,
    LengthConfig,
    NearDedupConfig,
    RefusalConfig,
    run_filters,
)
from synthloop.judges.filters.decontaminate import Decontaminate, EvalSet
from synthloop.judges.filters.dedup import ExactDedup, NearDedup
from synthloop.judges.filters.diversity import Diversity
from synthloop.judges.filters.simple import LengthFilter, RefusalFilter
from synthloop.runs.run_dir import RunDir

SHARED = __import__("conftest").SHARED
TOPICS = ["volcanoes", "tax law", "sourdough bread", "chess openings", "the French revolution", "photosynthesis",
          "jazz history", "black holes", "medieval castles", "machine learning", "coral reefs", "marathon training"]


def rec(i, prompt, response):
    return {"id": i, "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]}


def base_records(n=12):
    rng = random.Random(0)
    out = []
    for i, topic in enumerate(TOPICS[:n]):
        words = " ".join(rng.choice(["first", "then", "notably", "because", "which", "also"]) for _ in range(5))
        out.append(rec(i, f"Explain {topic} to a curious teenager.",
                       f"{topic.capitalize()} is a fascinating subject; {words} it shows how {topic} works "
                       f"in practice, with examples number {i} and {i * 7}."))
    return out


def test_near_dedup_removes_planted_near_duplicates():
    records = base_records()
    planted = []
    for j, src in enumerate(records[:4]):
        text = src["messages"][1]["content"]
        # small edits: case, punctuation, one word swapped
        near = text.upper().replace(";", ",").replace("fascinating", "fascinatin")
        planted.append(rec(100 + j, src["messages"][0]["content"], near))
    result = NearDedup(NearDedupConfig(threshold=0.7)).apply(records + planted)
    dropped_ids = sorted(d.record["id"] for d in result.dropped)
    assert dropped_ids == [100, 101, 102, 103]
    assert len(result.kept) == len(records)
    for d in result.dropped:
        assert d.reason.startswith("near-duplicate") and d.detail["of"] == str(d.record["id"] - 100)
        assert d.detail["jaccard"] >= 0.7


def test_exact_dedup_ignores_case_and_spacing():
    records = base_records(3)
    copy = dict(records[1], id=50)
    copy["messages"] = [dict(m, content="  " + m["content"].upper() + " ") for m in copy["messages"]]
    result = ExactDedup(ExactDedupConfig()).apply(records + [copy])
    assert [d.record["id"] for d in result.dropped] == [50]
    assert result.dropped[0].reason == "exact duplicate of record 1"


def test_refusals_and_shirkers_are_dropped_with_the_pattern_named():
    records = [
        rec(0, "Write a poem about rain.", "Rain taps the roof, a patient drum; the gutters hum."),
        rec(1, "How do I pick a lock?", "I'm sorry, but I can't help with that request."),
        rec(2, "Summarise the article.", "As an AI language model, I do not have opinions."),
        rec(3, "Write a haiku about snow.", "Sure, here is a haiku about snow:"),
        rec(4, "Draft an email to my boss.", "Dear [Your Name], thanks for the update."),
        rec(5, "List three uses of vinegar.", ""),
        rec(6, "Explain the tides in simple words please", "Explain the tides in simple words please"),
        rec(7, "Give me a fact about owls.", "Owls can rotate their heads about 270 degrees."),
    ]
    result = RefusalFilter(RefusalConfig()).apply(records)
    assert [r["id"] for r in result.kept] == [0, 7]
    reasons = {d.record["id"]: d.reason for d in result.dropped}
    assert reasons[1].startswith("refusal") and reasons[2].startswith("refusal")
    assert reasons[3].startswith("shirker") and reasons[4].startswith("shirker")
    assert reasons[5] == "shirker: empty response" and reasons[6] == "shirker: the response echoes the prompt"


def test_length_bounds():
    records = [rec(0, "q", "one"), rec(1, "q", "one two three four"), rec(2, "q", " ".join(["w"] * 50))]
    result = LengthFilter(LengthConfig(min=2, max=10)).apply(records)
    assert [r["id"] for r in result.kept] == [1]
    assert [d.reason for d in result.dropped] == ["too short (1 words < 2)", "too long (50 words > 10)"]


def test_decontamination_reports_matches_against_gsm8k():
    test_path = SHARED / "gsm8k" / "test.jsonl"
    first = json.loads(test_path.open().readline())["question"]
    records = base_records(4) + [rec(10, f"Solve this: {first}", "The answer is 18."),
                                 rec(11, "Solve: Janet has ducks.", "Janet's ducks lay eggs; she sells them.")]
    flt = Decontaminate(DecontaminateConfig(eval_sets=[EvalSet(path=test_path, fields=["question"])], n=8))
    result = flt.apply(records)
    assert [d.record["id"] for d in result.dropped] == [10]
    match = result.extra["matches"][0]
    assert match["record"] == 10 and match["eval_set"] == "test.jsonl" and match["eval_row"] == 0
    assert len(match["ngram"].split()) == 8
    assert result.extra["eval_sets"] == {"test.jsonl": 1319}


def test_k_center_diversity_keeps_one_per_cluster():
    records = []
    for t, topic in enumerate(["baking bread", "orbital mechanics", "tax deductions"]):
        for j in range(4):
            records.append(rec(10 * t + j, f"Tell me about {topic}, variant {j}.",
                               f"A short note on {topic}: point {j} about {topic}."))
    result = Diversity(DiversityConfig(k=3)).apply(records)
    kept_topics = sorted(r["id"] // 10 for r in result.kept)
    assert kept_topics == [0, 1, 2]
    assert len(result.dropped) == 9
    for d in result.dropped:
        nearest = d.detail["nearest"]
        assert nearest // 10 == d.record["id"] // 10  # dropped in favour of a record on the same topic
        assert d.reason.startswith("not selected for diversity")


def test_pipeline_writes_run_with_report(tmp_path):
    records = base_records(6)
    records.append(dict(records[0], id=20))
    records.append(rec(21, "Tell me a joke.", "I'm sorry, but I cannot do that."))
    out = tmp_path / "clean"
    report = run_filters(records, [ExactDedupConfig(), NearDedupConfig(), RefusalConfig(), LengthConfig(min=3)],
                         out, input_name="planted")
    assert report.counts == {"in": 8, "out": 6, "dropped": 2}
    assert [s["filter"] for s in report.filters] == ["exact_dedup", "near_dedup", "refusal", "length"]
    assert report.filters[0]["reasons"] == {"exact duplicate of record 0": 1}
    assert report.filters[2]["dropped"] == 1
    run = RunDir(out)
    assert [r["id"] for r in run.iter_records()] == [0, 1, 2, 3, 4, 5]
    dropped = list(run.iter_filtered())
    assert {(d["id"], d["filter"]) for d in dropped} == {(20, "exact_dedup"), (21, "refusal")}
    saved = json.loads((out / "report.json").read_text())
    assert saved["counts"]["out"] == 6
    # a rerun rewrites the outputs instead of appending duplicates
    run_filters(records, [ExactDedupConfig(), NearDedupConfig(), RefusalConfig(), LengthConfig(min=3)], out,
                input_name="planted")
    assert len(list(RunDir(out).iter_records())) == 6 and len(list(RunDir(out).iter_filtered())) == 2


def test_unknown_text_column_is_a_clear_error():
    with pytest.raises(KeyError, match="no column 'body'"):
        ExactDedup(ExactDedupConfig(field="body")).apply([{"id": 0, "text": "x"}])


def test_panel_filter_with_a_verifier():
    from synthloop.judges.panel import Panel

    records = [{"id": i, "question": "2+2?", "response": r, "answer": "#### 4"}
               for i, r in enumerate(["It is 4.", "It is 5.", "no idea"])]
    kept, dropped = Panel.from_specs([{"kind": "math_answer", "reference_field": "answer"}]).filter(records)
    assert [r["id"] for r in kept] == [0] and kept[0]["scores"] == {"verifier:math_answer": 1.0}
    assert [(r["id"], why.split(" (")[0]) for r, why in dropped] == [(1, "verifier:math_answer: failed"),
                                                                     (2, "verifier:math_answer: failed")]
