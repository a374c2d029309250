"""Latent thoughts: records expose every thought's scores and weights, the choice follows them, scores are
cached for resume, and on SmolLM2 the scorer prefers a thought that explains the document."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import SHARED
from helpers import run_cli

from synthloop.engines.types import Sampling
from synthloop.synth import thought_scoring
from synthloop.synth.generate import generate
from synthloop.synth.latent_thoughts import LatentThoughts, LatentThoughtsConfig

GSM8K = SHARED / "gsm8k" / "test.jsonl"
INPUTS = {"path": str(GSM8K), "columns": {"document": "answer"}, "limit": 3}


def _run(engine, path, **overrides):
    program = LatentThoughts(inputs=INPUTS, num_thoughts=3, min_thought_words=1, **overrides)
    return generate(program, engine=engine, run=path, sampling=Sampling(max_tokens=48, temperature=1.0), seed=2,
                    json_max_chars=40, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tiny_engine, tmp_path_factory):
    return _run(tiny_engine, tmp_path_factory.mktemp("latent") / "run")


def test_records_expose_scores_and_follow_them(tiny_run):
    summary = tiny_run
    records = list(summary.run.iter_records())
    assert summary.failed == 0 and len(records) + summary.filtered == 3 and records
    docs = [json.loads(line)["answer"] for line in GSM8K.read_text().splitlines()[:3]]
    for r in records:
        assert r["document"] == docs[r["id"]]
        cands = r["candidates"]
        assert len(cands) == 3 and len({c["thought"] for c in cands}) == 3  # distinct samples
        eligible = [c for c in cands if c["eligible"]]
        best = max(eligible, key=lambda c: c["logp_document_given_thought"])
        assert r["thought"] == best["thought"] == cands[r["chosen"]]["thought"]
        assert r["text"] == f"<thought>\n{r['thought']}\n</thought>\n{r['document']}"
        assert sum(c["weight"] for c in cands) == pytest.approx(1.0, abs=1e-5)
        for c in cands:
            assert c["log_weight"] == pytest.approx(
                c["logp_thought"] + c["logp_document_given_thought"] - c["logq_thought"], abs=1e-3)
            assert c["logp_document_given_thought"] < 0 and c["thought_tokens"] > 0
        assert r["document_tokens"] > 0 and r["logp_document"] < 0
        assert r["gain_per_token"] == pytest.approx(
            (best["logp_document_given_thought"] - r["logp_document"]) / r["document_tokens"], abs=1e-3)
        prov = r["provenance"]
        assert prov["program"] == "latent_thoughts" and prov["model"] == "tiny-random-chat"


def test_scores_come_from_the_cache_on_resume(tiny_engine, tiny_run, tmp_path):
    before = {r["id"]: r for r in tiny_run.run.iter_records()}
    # the same run without its records, request cache kept: a crash right after the model calls finished
    shutil.copytree(tiny_run.run.path, tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "records")
    (tmp_path / "run" / "records").mkdir()
    (tmp_path / "run" / "filtered.jsonl").unlink(missing_ok=True)
    again = _run(tiny_engine, tmp_path / "run")
    after = {r["id"]: r for r in again.run.iter_records()}
    # 3 docs x (3 thoughts + 1 + 3 x 3 scores) = 39 calls, every one answered by the cache
    assert again.cache_hits == 39 and again.output_tokens == 0
    assert {k: (v["thought"], v["candidates"]) for k, v in after.items()} == \
        {k: (v["thought"], v["candidates"]) for k, v in before.items()}
    assert after

def test_a_thought_that_copies_the_document_is_not_chosen():
    program = LatentThoughts(inputs=INPUTS)
    doc = "Natalia sold 48 clips in April and half as many in May, so 72 clips in all."
    scores = thought_scoring.DocumentScores(logp_document=-60.0, document_tokens=20, candidates=[
        thought_scoring.ThoughtScore(thought="Natalia sold 48 clips in April and half as many in May so 72",
                                     logp_document_given_thought=-5.0, logp_thought=-40, logq_thought=-3,
                                     thought_tokens=15),
        thought_scoring.ThoughtScore(thought="Half of 48 is 24, and 48 plus 24 gives the total of two months.",
                                     logp_document_given_thought=-30.0, logp_thought=-45, logq_thought=-30,
                                     thought_tokens=18),
        thought_scoring.ThoughtScore(thought="Clips.", logp_document_given_thought=-20.0, logp_thought=-5,
                                     logq_thought=-4, thought_tokens=2),
    ])
    pred = program._choose(doc, scores)
    assert pred.chosen == 1
    by_weight = LatentThoughts(inputs=INPUTS, select="importance", max_copy=1.0, min_thought_words=1)
    assert by_weight._choose(doc, scores).chosen == 2  # log_weight -21 beats -42 and -45
    assert pred.candidates[0]["reason"].startswith("copies the document")
    assert pred.candidates[2]["reason"] == "too short (1 words)"
    assert pred.candidates[0]["weight"] == 0 and pred.candidates[1]["weight"] == 1
    assert program.accept({"chosen": None, "candidates": pred.candidates[::2]}).startswith("no eligible thought")


def test_template_is_checked():
    with pytest.raises(ValueError, match="at the end"):
        LatentThoughtsConfig(inputs=INPUTS, template="{document}\n{thought}")
    assert thought_scoring.augmented_text("D", "T", "Thinking: {thought}\n\n{document}") == "Thinking: T\n\nD"


@pytest.mark.smollm2
def test_smollm2_prefers_the_thought_that_explains_the_document(smollm2_path):
    """The GSM8K question is the latent thought behind its worked solution; another problem's question is not.
    log p(solution | its own question) must beat log p(solution | another question), and log p(solution) alone,
    for every item (the short solutions keep this to ~1.5k tokens of prefill)."""
    from synthloop.engines import EngineConfig
    from synthloop.engines.transformers_engine import TransformersEngine
    from synthloop.engines.types import ScoreRequest

    rows = sorted((json.loads(line) for line in GSM8K.read_text().splitlines()[:40]), key=lambda r: len(r["answer"]))
    rows = rows[:4]
    requests = []
    for i, r in enumerate(rows):
        other = rows[(i + 1) % len(rows)]["question"]
        requests += [ScoreRequest(context=thought_scoring.thought_prefix(r["question"]), continuation=r["answer"]),
                     ScoreRequest(context=thought_scoring.thought_prefix(other), continuation=r["answer"]),
                     ScoreRequest(context="", continuation=r["answer"])]
    engine = TransformersEngine(smollm2_path, config=EngineConfig(kind="transformers"))
    try:
        results = engine.loglikelihood(requests)
    finally:
        engine.close()
    for i in range(len(rows)):
        good, bad, alone = (results[3 * i + k].logprob for k in range(3))
        assert good > bad + 5 and good > alone, (good, bad, alone)


def test_cli_runs_the_shipped_config(tmp_path):
    out = run_cli("generate", "configs/generate/latent_thoughts.yaml", "--set", f"output_dir={tmp_path}",
                  "--set", "engine.kind=transformers", "--set", "engine.model=tiny-random-chat",
                  "--set", "num_records=1", "--set", "program.inputs.limit=2", "--set", "program.num_thoughts=2",
                  "--set", "program.min_thought_words=1", "--set", "sampling.max_tokens=48",
                  "--set", "engine.json_string_max_chars=40")
    assert out.returncode == 0, out.stdout + out.stderr
    records = [json.loads(line) for p in (tmp_path / "latent_thoughts" / "records").glob("*.jsonl")
               for line in p.read_text().splitlines()]
    assert len(records) == 1 and all(len(r["candidates"]) == 2 and r["text"] for r in records)
