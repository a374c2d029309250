"""Rewriting into target styles with a faithfulness check, and composition: SkillMix output into the rewriter."""

from __future__ import annotations

import dspy
import pytest
from helpers import ROOT

from synthloop.configs import ConfigError, load_config
from synthloop.engines.types import Sampling
from synthloop.judges.base import JudgeItem
from synthloop.judges.panel import Panel
from synthloop.judges.similarity import EmbeddingSimilarityJudge
from synthloop.runs.inputs import DatasetInput
from synthloop.synth import Rewrite, SkillMix
from synthloop.synth.generate import generate
from synthloop.synth.generate_config import GenerateConfig

SOURCE = ("The lace plant produces perforations in its leaves through programmed cell death. The cells at the "
          "centre of each areole die first, and the death spreads outwards until it stops about five cells from "
          "the veins. This study followed the mitochondria of those cells during the process.")
FAITHFUL = ("The lace plant makes holes in its leaves by programmed cell death: cells in the middle of each areole "
            "die first and the dying spreads outward, stopping roughly five cells away from the veins. The study "
            "tracked the cells' mitochondria while this happened.")
UNRELATED = ("Interest rates rose again this quarter, and analysts expect the central bank to keep tightening "
             "its policy until inflation returns to its target of two percent.")


def _record(program: Rewrite, rewrite: str, style: str = "textbook") -> dict:
    prediction = dspy.Prediction(source=SOURCE, style=style, rewrite=rewrite, llm_faithful=None,
                                 similarity=program._similarity(SOURCE, rewrite))
    return program.to_record({}, prediction)


def test_faithfulness_check_drops_unfaithful_rewrites_with_the_reason():
    program = Rewrite(styles=["textbook", {"name": "tweet", "description": "Target style: a tweet."}])
    faithful = _record(program, FAITHFUL)
    assert faithful["faithfulness"]["similarity"] > 0.8 and program.accept(faithful) is None
    assert faithful["messages"][1]["content"] == FAITHFUL and "a textbook" in faithful["messages"][0]["content"]
    unrelated = _record(program, UNRELATED)
    assert unrelated["faithfulness"]["similarity"] < 0.3
    assert program.accept(unrelated).startswith("unfaithful: similarity")
    assert program.accept(_record(program, "Cells die.")).startswith("too short")
    assert program.accept(_record(program, SOURCE)).startswith("near-copy of the source (100%")
    assert program.accept(_record(program, "In short: [name] explains the study.")).startswith("copied the prompt")
    said_no = {**faithful, "faithfulness": {"similarity": 0.9, "llm_faithful": False}}
    assert program.accept(said_no).startswith("unfaithful: the LLM check")
    assert set(program.rewriters) == {"textbook", "tweet"}
    assert "Target style: a tweet." in program.rewriters["tweet"].signature.instructions
    with pytest.raises(ConfigError, match="unknown style 'poem'"):
        load_config(GenerateConfig, data={"program": {"kind": "rewrite", "styles": ["poem"]}})


def test_similarity_judge_scores_closeness_to_the_reference():
    items = [JudgeItem(prompt="", response=FAITHFUL, reference=SOURCE), JudgeItem(prompt=SOURCE, response=UNRELATED)]
    close, far = EmbeddingSimilarityJudge().score(items)
    assert 0 <= far.score < 0.6 <= close.score <= 1
    panel = Panel.from_specs([{"kind": "embedding_similarity", "min_score": 0.6}])
    assert [v.accepted for v in panel.score(items)] == [True, False]


def test_rewrite_run_on_tiny_model(tiny_engine, tmp_path):
    pubmedqa = ROOT.parent / "shared" / "data" / "pubmedqa" / "ori_pqal.json"
    program = Rewrite(inputs={"path": str(pubmedqa), "columns": {"text": "CONTEXTS"}, "limit": 6},
                      max_text_chars=300, faithfulness={"llm_check": True}, keep_columns=["id"])
    summary = generate(program, engine=tiny_engine, run=tmp_path / "rw", sampling=Sampling(max_tokens=64),
                       json_max_chars=60, progress=False)
    assert summary.kept + summary.filtered == 6 and summary.failed == 0
    rows = [f["record"] for f in summary.run.iter_filtered()] + list(summary.run.iter_records())
    assert [r["style"] for r in sorted(rows, key=lambda r: r["id"])] == ["qa", "textbook", "wikipedia"] * 2
    for r in rows:
        assert 0 <= r["faithfulness"]["similarity"] <= 1 and isinstance(r["faithfulness"]["llm_faithful"], bool)
        assert r["source"] in r["messages"][0]["content"] and r["input_id"].isdigit()
        assert r["provenance"]["program"] == "rewrite"
    # a random model's rewrites are noise: the check must drop them, saying why
    reasons = [f["reason"] for f in summary.run.iter_filtered()]
    assert reasons and all(r.startswith(("unfaithful", "too short", "empty")) for r in reasons)


def test_skillmix_output_feeds_the_rewriter(tiny_engine, tmp_path):
    """Composition in Python: a SkillMix run's records are the rewriter's inputs, lineage and skills carried."""
    (tmp_path / "skills.txt").write_text("budget planning\nunit conversion\npoetry writing\n")
    mix = generate(SkillMix(skills=tmp_path / "skills.txt", min_response_words=1, min_instruction_words=1),
                   engine=tiny_engine, run=tmp_path / "mix", num_records=3,
                   sampling=Sampling(max_tokens=96, temperature=1.0), json_max_chars=80, progress=False)
    assert mix.kept == 3
    rows = DatasetInput(path=mix.run.path, columns={"text": "messages.-1.content"}).rows()
    rewriter = Rewrite(styles=["qa"], min_text_chars=1, min_length_ratio=0, keep_columns=["skills", "id"],
                       faithfulness={"min_similarity": None})
    out = generate(rewriter, engine=tiny_engine, run=tmp_path / "rw", inputs=rows,
                   sampling=Sampling(max_tokens=64), json_max_chars=50, progress=False)
    records = {r["input_id"]: r for r in out.run.iter_records()} | \
        {f["record"]["input_id"]: f["record"] for f in out.run.iter_filtered()}
    sources = {r["id"]: r for r in mix.run.iter_records()}
    assert set(records) == set(sources)
    for source_id, r in records.items():
        assert r["skills"] == sources[source_id]["skills"] and r["style"] == "qa"
        assert r["source"] == sources[source_id]["messages"][-1]["content"].strip()
        assert r["faithfulness"]["similarity"] is None
