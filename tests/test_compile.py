"""Compiling programs with DSPy optimizers against a synthloop judge; saving, reloading, using the result."""

from __future__ import annotations

import json

import dspy
import pytest
import yaml
from helpers import ROOT, run_cli, write_config

from synthloop.engines.base import Engine
from synthloop.engines.types import Sampling
from synthloop.judges.base import VerifierJudge
from synthloop.judges.panel import Member
from synthloop.judges.verifiers.span import SpanVerifier
from synthloop.runs.cache import RequestCache
from synthloop.synth import Rewrite, TaskGeneration
from synthloop.synth.base import load_compiled
from synthloop.synth.compile import JudgeMetric, OptimizerConfig, compile_program
from synthloop.synth.generate import generate

PUBMEDQA = ROOT.parent / "shared" / "data" / "pubmedqa" / "ori_pqal.json"
INPUTS = {"path": str(PUBMEDQA), "columns": {"passage": "CONTEXTS"}}


class Recording(Engine):
    """Passes everything to a real engine and remembers the prompts."""

    kind = "recording"

    def __init__(self, inner):
        super().__init__(inner.model)
        self.inner, self.requests = inner, []

    def submit(self, request):
        self.requests.append(request)
        return self.inner.submit(request)

    def describe(self):
        return self.inner.describe()


def _extractive(**overrides) -> TaskGeneration:
    return TaskGeneration(inputs=INPUTS, task_types=["extractive_qa"], max_passage_chars=150,
                          drop_failed_checks=False, **overrides)


def test_metric_is_the_judge_score_of_kept_records():
    program = _extractive()
    metric = JudgeMetric(program, VerifierJudge(SpanVerifier()))
    passage = "The trial enrolled 120 patients in Boston between 2004 and 2008."

    def pred(question, answer):
        return dspy.Prediction(passage=passage, task_type="extractive_qa",
                               fields={"answer": answer, "question": question})

    assert metric.score({}, pred("Where was the trial held?", "Boston")).score == 1.0
    missed = metric.score({}, pred("Where was the trial held?", "Chicago"))
    assert missed.score == 0.0 and missed.kept and missed.reason == "answer not found in the passage"
    dropped = metric.score({}, pred("Where?", "Boston"))
    assert dropped.score == 0.0 and not dropped.kept and dropped.reason.startswith("filtered: task too short")
    example = dspy.Example(passage=passage).with_inputs("passage")
    assert metric(example, pred("Where was the trial held?", "Boston"), trace=[]) is True  # bootstrapping: a bool
    assert metric(example, pred("Where was the trial held?", "Chicago")) == 0.0  # evaluation: the score


def test_compile_save_reload_and_generate_with_the_demos(tiny_engine, tmp_path):
    sampling = Sampling(max_tokens=48, temperature=1.0)
    # min_score 0: on a random model every trace counts, so the demos' plumbing is what is tested here
    judge = Member(VerifierJudge(SpanVerifier()), min_score=0.0)
    result = compile_program(_extractive(), engine=tiny_engine, judge=judge, out=tmp_path / "compiled", train_size=2,
                             held_out=2, sampling=sampling,
                             optimizer=OptimizerConfig(max_bootstrapped_demos=2, max_rounds=1), json_max_chars=12,
                             log=lambda *_: None)
    key = "generators['extractive_qa']"  # (a trace whose record the program's own filter drops is no demo)
    assert list(result.demos) == [key] and 1 <= result.demos[key] <= 2 and result.before.n == result.after.n == 2
    state = json.loads(result.path.read_text())
    demos = state[key]["demos"]
    assert len(demos) == result.demos[key] and all({"passage", "question", "answer"} <= set(d) for d in demos)
    assert state["synthloop"]["program"] == "task_generation"
    report = json.loads((result.run / "report.json").read_text())
    assert report["before"]["n"] == 2 and report["demos"] == result.demos
    manifest = json.loads((result.run / "manifest.json").read_text())
    assert manifest["kind"] == "compile" and manifest["status"] == "completed"
    assert len(RequestCache(result.run / "cache.sqlite")) > 0

    compiled = _extractive(compiled=result.run)  # the run directory or program.json
    assert [d["passage"] for d in compiled.generators["extractive_qa"].demos] == [d["passage"] for d in demos]
    assert "compiled_sha256" in compiled.describe()
    recording = Recording(tiny_engine)
    generate(compiled, engine=recording, run=tmp_path / "gen", num_records=1, max_items=1, sampling=sampling,
             json_max_chars=12, progress=False)
    prompt = json.dumps(recording.requests[0].messages)
    assert all(d["passage"][:60] in prompt for d in demos)  # the demos are in the prompt generate sends:
    assert len(recording.requests[0].messages) == 2 + 2 * len(demos)  # system, a user/assistant pair per demo, user
    plain = Recording(tiny_engine)
    generate(_extractive(), engine=plain, run=tmp_path / "plain", num_records=1, max_items=1, sampling=sampling,
             json_max_chars=12, progress=False)
    assert len(plain.requests[0].messages) == 2

    with pytest.raises(FileNotFoundError, match="no compiled program here"):
        _extractive(compiled=tmp_path / "nothing")
    with pytest.raises(ValueError, match="compiled for program 'task_generation'"):
        load_compiled(Rewrite(styles=["qa"]), result.path)
    with pytest.raises(ValueError, match="none of this program's predictors"):
        TaskGeneration(inputs=INPUTS, task_types=["nli"], compiled=result.path)
    both = TaskGeneration(inputs=INPUTS, task_types=["nli", "extractive_qa"], compiled=result.path)
    assert both.compiled_predictors == [key] and both.generators["nli"].demos == []


def test_compile_and_generate_from_the_cli(tmp_path):
    program = {"kind": "task_generation", "inputs": INPUTS, "task_types": ["extractive_qa"], "max_passage_chars": 150,
               "drop_failed_checks": False}
    common = {"output_dir": str(tmp_path / "runs"), "sampling": {"temperature": 1.0, "max_tokens": 48},
              "engine": {"kind": "transformers", "model": "tiny-random-chat", "json_string_max_chars": 12}}
    config = write_config(tmp_path / "tg_compile.yaml", {
        **common, "program": program, "train_size": 2, "held_out": 2,
        "optimizer": {"kind": "bootstrap_fewshot", "max_bootstrapped_demos": 1, "max_rounds": 1},
        "metric": {"kind": "span_in_passage", "min_score": 0.0}})
    compiled = run_cli("compile", str(config))
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    assert "before" in compiled.stdout and "after" in compiled.stdout
    run = tmp_path / "runs" / "tg_compile"
    assert compiled.stdout.strip().endswith(str(run / "program.json"))
    gen_config = write_config(tmp_path / "tg.yaml", {**common, "program": program, "num_records": 2,
                                                     "show_examples": 0})
    generated = run_cli("generate", str(gen_config), "--set", f"program.compiled={run}")
    assert generated.returncode == 0, generated.stderr[-3000:]
    identity = json.loads((tmp_path / "runs" / "tg" / "identity.json").read_text())
    assert identity["program"]["config"]["compiled"] == str(run) and identity["program"]["compiled_sha256"]
    saved = yaml.safe_load((tmp_path / "runs" / "tg" / "config.yaml").read_text())
    assert saved["program"]["compiled"] == str(run)
