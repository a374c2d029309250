"""The pieces of Self-Lengthen that need no model: LongWriter's length score and word count, splitting drafts
into parts, cleaning expansions, the repetition and drift filters (real MiniLM embeddings), and the
LongBench-Write / question task sources on the real files."""

from __future__ import annotations

import math

import pytest

from synthloop.judges.base import JudgeItem
from synthloop.judges.filters import RepetitionConfig, RepetitionFilter, SimilarityConfig, SimilarityFilter, run_filters
from synthloop.judges.filters.repetition import repetition_share
from synthloop.judges.length import LengthFollowingJudge, count_words, length_score, required_length
from synthloop.judges.panel import Panel
from synthloop.loops.recipes.self_lengthen.text import clean_expansion, round_words, split_parts, tail_words
from synthloop.loops.tasks import LongBenchWriteTasks, QuestionTasks

SHARED = __import__("conftest").SHARED


@pytest.mark.parametrize(("required", "output", "expected"), [
    (100, 100, 100.0),      # exact
    (100, 50, 50.0),        # half as long: 1 - (2 - 1) / 2
    (100, 200, 200 / 3),    # twice as long: 1 - (2 - 1) / 3
    (400, 300, 100 * (1 - (400 / 300 - 1) / 2)),
    (100, 25, 0.0),         # a quarter: clipped at 0
    (100, 34, 100 * (1 - (100 / 34 - 1) / 2)),
    (100, 400, 0.0),        # four times: 1 - 3/3
    (100, 0, 0.0),          # empty
])
def test_length_score_is_longwriters(required, output, expected):
    assert length_score(required, output) == pytest.approx(expected)


def test_too_short_costs_more_than_too_long():
    assert length_score(300, 200) < length_score(300, 450)  # both 1.5x off
    with pytest.raises(ValueError):
        length_score(0, 10)


def test_count_words_english_and_chinese():
    assert count_words("Hello, world! It's 2024.") == 4  # Hello, world, It, s (LongWriter's regex)
    assert count_words("写一篇文章 about AI") == 7
    assert count_words("") == 0


def test_length_judge_scores_against_the_reference():
    panel = Panel.from_specs([{"kind": "length", "min_score": 0.8}])
    text = " ".join(["word"] * 90)
    items = [JudgeItem(prompt="p", response=text, reference=100),
             JudgeItem(prompt="p", response=text, reference="300 words"),
             JudgeItem(prompt="p", response=text, reference=None)]
    verdicts = LengthFollowingJudge().score(items)
    assert verdicts[0].score == pytest.approx(length_score(100, 90) / 100)
    assert verdicts[1].score == pytest.approx(length_score(300, 90) / 100)
    assert math.isnan(verdicts[2].score) and "no required length" in verdicts[2].rationale
    assert [v.accepted for v in panel.score(items)] == [True, False, False]
    assert required_length("about 250 words") == 250
    with pytest.raises(ValueError):
        required_length("100 to 200")


def test_split_parts_balances_words_at_paragraphs():
    paragraphs = ["one two three four five six", "seven eight", "nine ten eleven twelve", "a b c d e f g"]
    parts = split_parts("\n\n".join(paragraphs), 2)
    assert parts == ["\n\n".join(paragraphs[:2]), "\n\n".join(paragraphs[2:])]
    assert split_parts("\n\n".join(paragraphs), 3) == [paragraphs[0], "\n\n".join(paragraphs[1:3]), paragraphs[3]]
    assert split_parts("\n\n".join(paragraphs), 1) == ["\n\n".join(paragraphs)]
    # one paragraph: lines, then sentences
    assert split_parts("First line here.\nSecond line here.", 2) == ["First line here.", "Second line here."]
    assert split_parts("One sentence here. Another one there! A third?", 2) == [
        "One sentence here.", "Another one there! A third?"]
    assert split_parts("Just one sentence", 2) == ["Just one sentence"]
    assert split_parts("", 2) == []
    # nothing is lost or reordered
    text = "\n\n".join(f"Paragraph {i} " + "word " * (i % 5 + 1) for i in range(11))
    for k in (2, 3, 4):
        parts = split_parts(text, k)
        assert len(parts) == k and "\n\n".join(parts).split() == text.split()


def test_clean_expansion_drops_an_announcing_first_line():
    assert clean_expansion("Here's an expanded version of the passage:\n\nThe city wakes.") == "The city wakes."
    assert clean_expansion("Sure! Here is the expanded text:\nBody.") == "Body."
    assert clean_expansion("Expanded passage:\nBody.") == "Body."
    assert clean_expansion("Here is why time matters.\nBody.") == "Here is why time matters.\nBody."
    assert clean_expansion("Here's the passage:") == "Here's the passage:"  # nothing after it: kept
    assert round_words(347) == 350 and round_words(4) == 10 and round_words(1260) == 1300
    assert tail_words("a b c d", 2) == "c d" and tail_words("a b", 0) == ""


def test_repetition_filter():
    prose = ("The river bends past the old mill, where children once fished for trout. In spring the water rises "
             "and floods the meadow, and herons stand in the shallows waiting.")
    loop = "I love the sea. " * 12
    assert repetition_share(prose) == 0.0
    assert repetition_share(loop) > 0.8
    result = RepetitionFilter(RepetitionConfig(field="text", max_share=0.25)).apply(
        [{"id": 1, "text": prose}, {"id": 2, "text": loop}])
    assert [r["id"] for r in result.kept] == [1]
    assert result.dropped[0].reason.startswith("repetition:")


def test_similarity_filter_catches_a_drifting_part(tmp_path):
    parts = ["Regular exercise strengthens the heart and lungs.", "Sleep helps the body recover after training."]
    good = ["Exercising regularly makes your heart stronger and improves lung capacity, so climbing stairs gets "
            "easier.", "Getting enough sleep lets muscles repair and recover after a hard training session."]
    drifted = [good[0], "The stock market closed higher today as technology shares rallied on earnings."]
    records = [{"id": "a", "instruction": "How does exercise help health?", "parts": parts, "expansions": good,
                "text": "\n\n".join(good)},
               {"id": "b", "instruction": "How does exercise help health?", "parts": parts, "expansions": drifted,
                "text": "\n\n".join(drifted)}]
    flt = SimilarityFilter(SimilarityConfig(field="expansions", to="parts", min=0.4))
    cosines = flt.cosines(records)
    assert len(cosines[0]) == 2 and min(cosines[0]) > 0.5 and cosines[1][1] < 0.2
    result = flt.apply(records)
    assert [r["id"] for r in result.kept] == ["a"]
    assert "element 1" in result.dropped[0].reason and result.dropped[0].reason.startswith("drift:")
    # through the filter pipeline, by config (as a loop or `synthloop filter` uses them)
    report = run_filters(records, [RepetitionConfig(field="text"), SimilarityConfig(field="expansions", to="parts",
                                                                                     min=0.4)], tmp_path / "f")
    assert report.counts == {"in": 2, "out": 1, "dropped": 1}
    with pytest.raises(ValueError, match="set min, max"):
        SimilarityConfig(min=None, max=None)


def test_longbench_write_tasks():
    tasks = list(LongBenchWriteTasks(dir=SHARED / "longbench_write").rows())
    en = [t for t in tasks if t["set"] == "en"]
    ruler = [t for t in tasks if t["set"] == "ruler"]
    assert len(en) == 30 and all(100 <= t["reference"] <= 800 for t in en)
    assert len(ruler) == 12 and sorted({t["reference"] for t in ruler}) == [100, 200, 400]
    assert "Write a 200-word China travel guide" in {t["prompt"] for t in ruler}
    assert all(str(t["reference"]) in t["prompt"] for t in ruler)
    originals = list(LongBenchWriteTasks(dir=SHARED / "longbench_write", sets=["ruler"], ruler_lengths=[],
                                         max_length=None).rows())
    assert len(originals) == 24 and not any("字" in t["prompt"] for t in originals)
    assert list(LongBenchWriteTasks(dir=SHARED / "longbench_write").rows()) == tasks  # a fixed order
    with pytest.raises(FileNotFoundError):
        list(LongBenchWriteTasks(dir=SHARED / "nowhere").rows())


def test_question_tasks():
    files = [SHARED / "mt_bench" / "vicuna_bench_question.jsonl", SHARED / "mt_bench" / "question.jsonl"]
    rows = list(QuestionTasks(paths=files, categories=["writing", "generic"]).rows())
    assert len(rows) == 30 and {r["category"] for r in rows} == {"writing", "generic"}
    assert rows[0]["prompt"] == "How can I improve my time management skills?"
    assert len(list(QuestionTasks(paths=files).rows())) == 160
