"""Test-time self-improvement (TT-SI) and test-time distillation (TT-D) on the controller.

The selection logic (majority votes, labels, kept problems, the similar-problem filters) is checked on real texts;
the whole recipe runs on the tiny model through every stage (CLI subprocess), and TT-D with a separately configured
teacher: a real loopback OpenAI-compatible server, which then writes every similar problem and solution."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dspy
import pytest
from helpers import ROOT, run_cli, write_config

from synthloop.configs import load_config
from synthloop.judges.self_consistency import majority, math_key, text_key
from synthloop.loops import run_loop
from synthloop.loops.config import LoopConfig
from synthloop.loops.recipes.ttsi.stages import kept_problems, labelled
from synthloop.runs.jsonl import read_jsonl
from synthloop.runs.run_dir import RunDir
from synthloop.synth.similar_problems import SimilarProblems

STAGES = ["probe", "synthesize", "solve", "verify", "train-sft", "answer", "report"]


@pytest.fixture(autouse=True)
def _test_judge_importable(monkeypatch):
    """The configs below name the test judge `loop_judges:make`; the CLI subprocesses must import it."""
    tests = str(ROOT / "tests")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))


def tt_config(out: Path, **overrides) -> dict:
    """TT-SI on the tiny random model. Its answers are noise, so the probe uses the text answer key (no two samples
    agree: every input is uncertain), verification keeps every problem (min_agreement 0 against the solutions'
    majority) and the judges accept every answer (min_score 0): data reaches every stage."""
    config = {
        "output_dir": str(out),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "tasks": {"eval": {"kind": "arithmetic", "seed": 2}, "eval_count": 6},
        "prompt": {"template": "{prompt}\nEnd with: The answer is N."},
        "sampling": {"n": 4, "max_tokens": 12, "temperature": 1.0},
        "eval": {"max_tokens": 12},
        "judges": [{"kind": "math_answer", "min_score": 0.0},
                   {"kind": "python", "factory": "loop_judges:make", "min_score": 0.0}],
        "recipe": {"kind": "tt_si", "probe": {"answer_key": "text", "min_agreement": 0.6},
                   "synthesis": {"per_input": 2, "sampling": {"max_tokens": 64}, "min_words": 1},
                   "verify": {"samples": 3, "sampling": {"max_tokens": 12}, "label": "majority", "min_agreement": 0.0,
                              "max_per_problem": 2,
                              "include_truncated": True}},
        "train": {"sft": {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-3, "lora": {"r": 4}}},
        "rounds": 1,
        "concurrency": 8,
    }
    config.update(overrides)
    return config


# -- the selection logic ----------------------------------------------------------------------------
def test_majority_vote_reads_final_numbers_and_counts_abstentions():
    texts = ["Maya has 9 marbles now.", "The answer is 9.", "#### 9.0", "She has 12 marbles.", "I do not know."]
    keys = [math_key(t) for t in texts]
    assert keys == ["9", "9", "9", "12", None]
    vote = majority(keys)
    assert (vote.answer, vote.share, vote.votes, vote.distinct) == ("9", 0.6, 5, 2)
    assert majority([None, None]).answer is None and majority([None, None]).share == 0.0
    assert majority(["3", "4", "4", "3"]).answer == "3"  # a tie goes to the answer given first
    assert math_key("It costs $1,250.50") == "2501/2" and math_key("-3/4 of it") == "-3/4"
    assert text_key("  Paris. ") == "paris" and text_key("") is None


def _solutions(writer: str | None, texts: list[str], rid: int = 0) -> dict:
    return {"id": rid, "prompt": "p", "messages": [{"role": "user", "content": "p"}], "writer_answer": writer,
            "source_task": "eval-0", "samples": [{"text": t, "finish_reason": "stop"} for t in texts]}


def test_labels_and_kept_problems():
    records = [_solutions("7", ["It is 7.", "7", "8"], 0), _solutions("5", ["9", "9", "It is 9."], 1),
               _solutions(None, ["no idea"] * 3, 2)]
    by_writer = labelled(records, math_key, "writer")
    assert [(r["id"], r["reference"], r["solutions_majority"]) for r in by_writer] == [(0, "7", "7"), (1, "5", "9")]
    by_majority = labelled(records, math_key, "majority")
    assert [(r["id"], r["reference"]) for r in by_majority] == [(0, "7"), (1, "9")]  # no answer read: no label
    judged = [{"id": 0, "samples": [{"accepted": a} for a in (True, True, False)]},
              {"id": 1, "samples": [{"accepted": a} for a in (True, False, False)]},
              {"id": 2, "samples": [{"accepted": False}] * 3}]
    assert [r["id"] for r in kept_problems(judged, 0.5)] == [0]
    assert [r["id"] for r in kept_problems(judged, 0.0)] == [0, 1]  # at least one accepted, always


def test_similar_problem_filters():
    program = SimilarProblems(per_problem=2, keep_columns=["task_id"])
    original = "Maya has 7 marbles. She buys 5 more marbles. How many marbles does Maya have now?"
    items = list(program.items([{"problem": original, "task_id": "eval-3"}]))
    assert items == [{"problem": original, "variant": 0, "task_id": "eval-3"},
                     {"problem": original, "variant": 1, "task_id": "eval-3"}]

    def record(new: str, answer: str = "12") -> dict:
        prediction = dspy.Prediction(new_problem=new, solution="4 + 8 = 12", answer=answer)
        return program.to_record(items[0], prediction)

    good = record("Leo has 4 apples. He finds 8 more apples. How many apples does Leo have now?")
    assert good["answer_key"] == "12" and good["task_id"] == "eval-3" and program.accept(good) is None
    assert good["messages"][1]["content"].endswith("The answer is 12.")
    program.remember(good)
    assert program.accept(good) == "repeats an earlier new problem"
    assert program.accept(record(original)).startswith("copies the original problem")
    assert program.accept(record("How many?")).startswith("too short")
    assert program.accept(record("Leo has 4 apples and finds some more of them.", "many")).startswith("no answer")
    with pytest.raises(KeyError, match="rows need a 'problem' column"):
        list(program.items([{"question": original}]))


def test_config_errors(tmp_path):
    base = {"tasks": {"eval": {"kind": "arithmetic", "seed": 2}}}
    LoopConfig.model_validate({**base, "recipe": {"kind": "tt_si"}})  # test-time recipes need no training tasks
    with pytest.raises(ValueError, match="tasks.train: recipe expert_iteration trains on tasks"):
        LoopConfig.model_validate(base)
    with pytest.raises(ValueError, match="teacher"):
        LoopConfig.model_validate({**base, "recipe": {"kind": "tt_d"}})
    for name, kind in (("tt_si", "tt_si"), ("tt_d", "tt_d")):  # the shipped configs load as they are
        assert load_config(LoopConfig, ROOT / "configs" / "loop" / f"{name}.yaml").recipe.kind == kind
    path = write_config(tmp_path / "bad.yaml", tt_config(tmp_path / "runs"))
    result = run_cli("loop", str(path), "--set", "recipe.probe.answer_key=number")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "recipe.tt_si.probe.answer_key" in lines[0], result.stderr


# -- the recipe on the tiny model -------------------------------------------------------------------
def test_tt_si_runs_every_stage_and_discards_the_adapter(tmp_path):
    path = write_config(tmp_path / "tt.yaml", tt_config(tmp_path / "runs", rounds=2))
    result = run_cli("loop", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "tt"
    state = json.loads((run / "state.json").read_text())
    assert [(r["round"], list(r["stages"])) for r in state["rounds"]] == [(0, ["evaluate"]), (1, STAGES), (2, STAGES)]
    r1 = run / "round-001"
    stages = state["rounds"][1]["stages"]
    # (i) the probe: N samples per test input, never shown the reference; all noise, so all uncertain
    probe = list(RunDir(r1 / "probe").iter_records())
    assert len(probe) == 6 and all(len(r["samples"]) == 4 and "reference" not in r for r in probe)
    votes = list(read_jsonl(r1 / "probe.jsonl"))
    assert len(votes) == 6 and all(v["uncertain"] and v["share"] < 0.6 for v in votes)
    # (ii) similar problems per uncertain input (the DSPy program), solved again and verified -> training rows
    written = RunDir(r1 / "similar")
    similar = list(written.iter_records()) + [f["record"] for f in written.iter_filtered()]
    assert len(similar) == 12 and {r["task_id"] for r in similar} == {v["task_id"] for v in votes}
    solutions = list(RunDir(r1 / "solutions").iter_records())
    assert solutions and all(len(r["samples"]) == 3 for r in solutions)
    rows = list(read_jsonl(r1 / "data" / "sft.jsonl"))
    texts = {s["text"] for r in solutions for s in r["samples"]}
    assert rows and all(r["completion"][0]["content"] in texts for r in rows)
    assert all(r["prompt"][-1]["content"].endswith("End with: The answer is N.") for r in rows)
    # (iii) a LoRA adapter trained briefly from the base model on exactly those rows
    train = stages["train-sft"]["outputs"]
    assert train["examples"] == len(rows) and train["steps"] == 3
    assert train["base_model"].endswith("tiny-random-chat")
    # (iv) the uncertain inputs answered by the adapted model, which is then deleted; the base policy is untouched
    answers = list(RunDir(r1 / "answers").iter_records())
    assert len(answers) == 6 and answers[0]["provenance"]["model"] == train["checkpoint"]
    assert not Path(train["checkpoint"]).exists() and stages["report"]["outputs"]["adapter_discarded"]
    assert state["rounds"][1]["metrics"]["checkpoints"] == {"policy": "tiny-random-chat", "adapter": "tiny-random-chat"}
    # the comparison, recomputed from the per-input table
    table = list(read_jsonl(r1 / "answers.jsonl"))
    metrics = state["rounds"][1]["metrics"]
    base = {r["task_id"]: r["samples"][0]["accepted"] for r in _judged(run / "round-000" / "eval-judged")}
    assert [r["base_correct"] for r in table] == [base[r["task_id"]] for r in table]
    assert all(r["final_from"] == "adapter" for r in table)
    assert metrics["tt_acc_uncertain"] == sum(r["final_correct"] for r in table) / 6
    assert metrics["base_acc_uncertain"] == sum(r["base_correct"] for r in table) / 6
    assert metrics["tt_sft_rows"] == len(rows) and metrics["tt_written"] == 12 and metrics["tt_uncertain"] == 6
    assert "unsure: adapted" in result.stdout + result.stderr
    # the next round adapts the base policy afresh, with new seeds
    r2 = state["rounds"][2]
    assert r2["checkpoint_in"]["adapter"] == "tiny-random-chat"
    assert r2["stages"]["train-sft"]["outputs"]["base_model"].endswith("tiny-random-chat")
    first = {r["id"]: r["samples"] for r in probe}
    assert any(r["samples"] != first[r["id"]] for r in RunDir(run / "round-002" / "probe").iter_records())


def _judged(path: Path) -> list[dict]:
    return [row for part in sorted(path.glob("part-*.jsonl")) for row in read_jsonl(part)]


def test_tt_d_teacher_writes_and_solves(tmp_path):
    """TT-D: the similar problems and their solutions come from the teacher engine (here a real OpenAI-compatible
    server on loopback), the policy only probes, trains and answers."""
    from synthloop.testing.openai_server import OpenAIServer

    with OpenAIServer(slots=16, latency_s=0.0, model="teacher-model") as server:
        data = tt_config(tmp_path / "runs")
        data["recipe"] = {**data["recipe"], "kind": "tt_d",
                          "teacher": {"kind": "openai", "model": server.model, "base_url": server.base_url}}
        summary = run_loop(LoopConfig.model_validate(data), tmp_path / "runs" / "ttd", progress=False)
        stats = server.stats()
    assert summary["status"] == "completed"
    r1 = tmp_path / "runs" / "ttd" / "round-001"
    similar = RunDir(r1 / "similar")
    solutions = list(RunDir(r1 / "solutions").iter_records())
    written = similar.manifest()["counts"]
    assert written["kept"] + written["filtered"] == 12
    assert stats["requests"] == 12 + len(solutions)  # every written problem and every solution set: the teacher's
    for run in (similar, RunDir(r1 / "solutions")):
        assert {r["provenance"]["engine"] for r in run.iter_records()} == {"openai"}
    assert {r["provenance"]["model"] for r in RunDir(r1 / "probe").iter_records()} == {"tiny-random-chat"}
    rows = list(read_jsonl(r1 / "data" / "sft.jsonl"))
    teacher_texts = {s["text"] for r in solutions for s in r["samples"]}
    assert rows and all(r["completion"][0]["content"] in teacher_texts for r in rows)
    metrics = json.loads((r1 / "metrics.json").read_text())
    assert metrics["sft_examples"] == len(rows) and metrics["tt_uncertain"] == 6
