"""Latent-thought EM (BoLT) on the tiny model, through the real CLI: every stage of two rounds runs (after a SIGKILL
in the middle of the first E-step and a rerun), the E-step of round 2 samples round 1's checkpoint, the M-step trains
on thought-augmented documents drawn from the E-step's candidates, the control arm trains on the raw documents for
the same number of steps, and the held-out perplexities are the engine's log-likelihoods of the held-out documents."""

from __future__ import annotations

import json
import math
import random
import signal
from collections import Counter

import pytest
from conftest import SHARED
from helpers import kill_when, popen_cli, run_cli, write_config

from synthloop.loops.config import LoopConfig
from synthloop.loops.recipes.latent_thought_em.stages import draw_thoughts, estep_stats
from synthloop.runs.jsonl import read_jsonl
from synthloop.runs.run_dir import RunDir

GSM8K = SHARED / "gsm8k"


def em_config(out, **overrides) -> dict:
    config = {
        "output_dir": str(out),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64, "json_string_max_chars": 40},
        "tasks": {"train": {"kind": "dataset", "path": str(GSM8K / "train.jsonl"), "prompt_column": "answer",
                            "reference_column": "question"},
                  "eval": {"kind": "dataset", "path": str(GSM8K / "test.jsonl"), "prompt_column": "answer",
                           "reference_column": "question"},
                  "per_round": 4, "fresh_each_round": False, "eval_count": 3},
        "sampling": {"temperature": 1.0, "max_tokens": 48},
        "recipe": {"kind": "latent_thought_em", "num_thoughts": 3, "min_thought_words": 1, "max_copy": 1.0,
                   "thoughts_per_document": 2},
        "train": {"plan": ["sft"], "sft": {"batch_size": 2, "learning_rate": 1e-3, "max_length": 256}},
        "stop": {"metric": "eval_logprob"},
        "rounds": 2,
        "concurrency": 8,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def em_run(tmp_path_factory):
    """The loop, killed (SIGKILL) while round 1's E-step writes its records, then rerun to the end."""
    tmp = tmp_path_factory.mktemp("bolt")
    path = write_config(tmp / "bolt.yaml", em_config(tmp / "runs", concurrency=1))  # one document at a time
    run = tmp / "runs" / "bolt"
    thoughts = RunDir(run / "round-001" / "thoughts")
    proc = popen_cli("loop", str(path))
    kill_when(proc, lambda: thoughts.records_dir.is_dir() and sum(1 for _ in thoughts.iter_records()) >= 1,
              "round 1's E-step records")
    assert proc.returncode == -signal.SIGKILL
    before = list(thoughts.iter_records())
    result = run_cli("loop", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    return run, result, before


def test_every_stage_runs_and_checkpoints_chain(em_run):
    run, result, _ = em_run
    state = json.loads((run / "state.json").read_text())
    stages = ["tasks", "thoughts", "build", "train-sft", "train-control", "evaluate-control", "evaluate"]
    assert [(r["round"], r["status"], list(r["stages"])) for r in state["rounds"]] == [
        (0, "done", ["evaluate"]), (1, "done", stages), (2, "done", stages)]
    r1, r2 = state["rounds"][1], state["rounds"][2]
    ckpt = {arm: {r: str(run / f"round-00{r}" / f"train-{arm}" / "model") for r in (1, 2)}
            for arm in ("sft", "control")}
    # round 1 starts both arms from the base model; round 2 continues each arm from its own round-1 checkpoint
    assert r1["checkpoint_in"] == {"policy": "tiny-random-chat", "control": "tiny-random-chat"}
    assert r2["checkpoint_in"] == {"policy": ckpt["sft"][1], "control": ckpt["control"][1]}
    assert r2["stages"]["train-sft"]["outputs"]["base_model"] == ckpt["sft"][1]
    assert r2["stages"]["train-control"]["outputs"]["base_model"] == ckpt["control"][1]
    assert state["checkpoints"] == {"policy": ckpt["sft"][2], "control": ckpt["control"][2]}
    # the E-step of round 2 sampled round 1's M-step checkpoint; evaluations scored the arm they name
    models = {r["provenance"]["model"] for r in RunDir(run / "round-002" / "thoughts").iter_records()}
    assert models == {ckpt["sft"][1]}
    assert r2["stages"]["evaluate"]["outputs"]["checkpoint"] == ckpt["sft"][2]
    assert r2["stages"]["evaluate-control"]["outputs"]["checkpoint"] == ckpt["control"][2]
    # the control arm: as many optimizer steps as the M-step, on as many raw documents as there are documents
    for r in (r1, r2):
        sft, control = r["stages"]["train-sft"]["outputs"], r["stages"]["train-control"]["outputs"]
        assert control["steps"] == sft["steps"] > 0 and control["examples"] == 4
    assert "held-out ppl" in result.stdout and "control ppl" in result.stdout


def test_m_step_data_is_drawn_from_the_e_step(em_run):
    run, _, _ = em_run
    docs = [json.loads(line)["answer"] for line in (GSM8K / "train.jsonl").read_text().splitlines()[:4]]
    for r in (1, 2):
        tasks = list(read_jsonl(run / f"round-00{r}" / "tasks.jsonl"))
        assert [t["prompt"] for t in tasks] == docs  # the same documents every round (fresh_each_round: false)
        thoughts = RunDir(run / f"round-00{r}" / "thoughts")
        records = {x["id"]: x for x in thoughts.iter_records()}
        records.update({x["id"]: x["record"] for x in thoughts.iter_filtered()})
        assert sorted(records) == [0, 1, 2, 3]
        rows = list(read_jsonl(run / f"round-00{r}" / "data" / "sft.jsonl"))
        per_doc = Counter(row["task_id"] for row in rows)
        for i, task in enumerate(tasks):
            mine = [row for row in rows if row["task_id"] == task["task_id"]]
            cands = records[i]["candidates"]
            if not any(c["eligible"] for c in cands):  # trained on as plain text
                assert [row["text"] for row in mine] == [docs[i]]
                continue
            assert per_doc[task["task_id"]] == 2  # thoughts_per_document
            for row in mine:
                cand = cands[row["thought_index"]]
                assert cand["eligible"] and cand["weight"] > 0 and row["weight"] == cand["weight"]
                assert row["text"] == f"<thought>\n{cand['thought']}\n</thought>\n{docs[i]}"
        raw = list(read_jsonl(run / f"round-00{r}" / "data" / "raw.jsonl"))
        assert [row["text"] for row in raw] == docs


def test_perplexity_is_the_engines_loglikelihood(em_run, tiny_engine):
    """Round 0 scores the base model: recompute the held-out log-likelihoods independently and compare."""
    from synthloop.engines.types import ScoreRequest

    run, _, _ = em_run
    rows = [json.loads(line) for line in (GSM8K / "test.jsonl").read_text().splitlines()[:3]]
    results = tiny_engine.loglikelihood(
        [ScoreRequest(context="", continuation=r["answer"]) for r in rows]
        + [ScoreRequest(context=f"<thought>\n{r['question']}\n</thought>\n", continuation=r["answer"]) for r in rows])
    alone, given = results[:3], results[3:]
    scores = list(read_jsonl(run / "round-000" / "evaluate.jsonl"))
    assert [s["logprob_alone"] for s in scores] == pytest.approx([x.logprob for x in alone], abs=1e-3)
    assert [s["logprob_given_context"] for s in scores] == pytest.approx([x.logprob for x in given], abs=1e-3)
    m = json.loads((run / "round-000" / "metrics.json").read_text())
    mean = sum(x.logprob for x in alone) / sum(x.tokens for x in alone)
    assert m["eval_logprob"] == pytest.approx(mean, abs=1e-4)
    assert m["eval_ppl"] == pytest.approx(math.exp(-mean), rel=1e-3)
    # both arms start from the same model: round 0's control figures are the policy's
    assert m["control_eval_ppl"] == m["eval_ppl"] and m["control_eval_ppl_given_context"] == m["eval_ppl_given_context"]
    summary = json.loads((run / "summary.json").read_text())
    for r in summary["rounds"][1:]:
        for key in ("eval_ppl", "eval_ppl_given_context", "control_eval_ppl", "estep_logp_per_token",
                    "estep_marginal_per_token", "sft_data", "sft_steps", "control_sft_steps"):
            assert r[key] is not None, key
    assert summary["metric"] == "eval_logprob" and summary["best_round"] in (0, 1, 2)
    assert (run / "rounds.png").stat().st_size > 10_000


def test_sigkill_in_the_e_step_then_resume(em_run):
    """The thoughts written before the kill are kept as they were, none is written twice, and the E-step finished."""
    run, _, before = em_run
    thoughts = RunDir(run / "round-001" / "thoughts")
    after = list(thoughts.iter_records())
    assert 1 <= len(before) < 4 and after[: len(before)] == before
    assert sorted(r["id"] for r in after) == [0, 1, 2, 3] and thoughts.manifest()["resumed"] == 1
    state = json.loads((run / "state.json").read_text())
    assert [r["status"] for r in state["rounds"]] == ["done", "done", "done"]


def test_draws_follow_the_importance_weights():
    cands = [{"eligible": True, "weight": 0.7, "log_weight": -10.0, "logp_document_given_thought": -30.0},
             {"eligible": True, "weight": 0.3, "log_weight": -10.8, "logp_document_given_thought": -20.0},
             {"eligible": False, "weight": 0.0, "log_weight": -1.0, "logp_document_given_thought": -1.0}]
    counts = Counter(draw_thoughts(cands, "sample", 20_000, random.Random(0)))
    assert set(counts) == {0, 1} and counts[0] / 20_000 == pytest.approx(0.7, abs=0.015)
    assert draw_thoughts(cands, "best", 1, random.Random(0)) == [0]
    assert draw_thoughts(cands, "likelihood", 1, random.Random(0)) == [1]  # the ineligible one never wins
    assert draw_thoughts([dict(cands[2])], "sample", 1, random.Random(0)) == []


def test_estep_stats_by_hand():
    records = [{"id": 0, "logp_document": -20.0, "document_tokens": 10, "candidates": [
        {"eligible": True, "weight": 0.5, "log_weight": -25.0, "logp_document_given_thought": -15.0,
         "thought_tokens": 6},
        {"eligible": True, "weight": 0.5, "log_weight": -25.0, "logp_document_given_thought": -16.0,
         "thought_tokens": 8}]}]
    stats = estep_stats(records, {0: [1]})
    assert stats["estep_logp_per_token"] == -2.0
    assert stats["estep_marginal_per_token"] == pytest.approx(-2.5, abs=1e-4)  # log of the mean of two equal weights
    assert stats["estep_gain_per_token"] == 0.4 and stats["estep_ess"] == 2.0 and stats["estep_thought_tokens"] == 8


def test_bad_configs_fail_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="needs draw: sample"):
        LoopConfig.model_validate(em_config(tmp_path, recipe={"kind": "latent_thought_em", "draw": "best",
                                                              "thoughts_per_document": 2}))
    with pytest.raises(ValueError, match="at the end"):
        LoopConfig.model_validate(em_config(tmp_path, recipe={"kind": "latent_thought_em",
                                                              "template": "{document} {thought}"}))
    path = write_config(tmp_path / "dpo.yaml", em_config(tmp_path / "runs", train={"plan": ["dpo"]}))
    result = run_cli("loop", str(path))
    assert result.returncode == 2 and "trains with sft only" in result.stderr and "Traceback" not in result.stderr


def test_a_cut_off_or_empty_sample_is_dropped_not_the_document(tiny_engine):
    """The E-step on SmolLM2 lost whole documents when one of N samples hit max_tokens or came back empty (the
    first round's checkpoint writes longer thoughts). Now the document keeps its other samples, scored for real by
    the tiny engine; only when every sample failed is the failure raised (the runner then retries the document).
    The samples are scripted: only the control flow around them is under test."""
    import dspy

    from synthloop.engines.dspy_bridge import TruncatedOutputError, dspy_lm
    from synthloop.synth.latent_thoughts import LatentThoughts

    doc = json.loads((GSM8K / "test.jsonl").read_text().splitlines()[0])["answer"]
    program = LatentThoughts(inputs={"path": str(GSM8K / "test.jsonl"), "columns": {"document": "answer"}},
                             num_thoughts=4, min_thought_words=1, max_copy=1.0)

    def script(*outs):
        items = iter(outs)

        async def acall(document, config):
            item = next(items)
            if isinstance(item, BaseException):
                raise item
            return dspy.Prediction(thought=item)
        program.infer.acall = acall

    with dspy.context(lm=dspy_lm(tiny_engine)):
        script("Janet's ducks lay eggs every day.", TruncatedOutputError("output cut off at max_tokens=8"), ' "" ',
               "She sells the rest at the market.")
        pred = program.forward(doc)
        assert [c["thought"] for c in pred.candidates] == ["Janet's ducks lay eggs every day.",
                                                           "She sells the rest at the market."]
        assert pred.dropped == ["truncated", "empty"] and pred.chosen in (0, 1)
        assert all(c["logp_document_given_thought"] < 0 and c["thought_tokens"] > 0 for c in pred.candidates)
        assert sum(c["weight"] for c in pred.candidates) == pytest.approx(1.0, abs=1e-5)

        script(*[TruncatedOutputError("output cut off at max_tokens=8")] * 4)
        with pytest.raises(TruncatedOutputError):
            program.forward(doc)
        script("A thought.", RuntimeError("the engine broke"), "x", "y")
        with pytest.raises(RuntimeError, match="engine broke"):  # not a bad sample: never swallowed
            program.forward(doc)
        script(" ", '""', "", " ")
        pred = program.forward(doc)
        assert pred.candidates == [] and pred.chosen is None
        record = program.to_record({"document": doc}, pred)
        assert program.accept(record) == "no eligible thought (empty sample)"
    stats = estep_stats([{**record, "id": 0}], {0: []})
    assert stats["estep_marginal_per_token"] is None and stats["estep_dropped_samples"] == 4
