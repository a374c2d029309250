"""Self-instruct: deterministic inputs, the paper's filters, and records in TRL's messages format."""

from __future__ import annotations

from helpers import SEED_TASKS

from synthloop.engines.types import Sampling
from synthloop.synth.generate import generate
from synthloop.synth.self_instruct import SelfInstruct, clean_task, load_seed_tasks


def _record(task: str, response: str = "A fine answer.") -> dict:
    return {"messages": [{"role": "user", "content": task}, {"role": "assistant", "content": response}]}


def test_seed_tasks_and_deterministic_inputs():
    seeds = load_seed_tasks(SEED_TASKS)
    assert len(seeds) == 175
    a, b = SelfInstruct(seed_tasks=SEED_TASKS), SelfInstruct(seed_tasks=SEED_TASKS)
    first = [next(iter(a.inputs())) for _ in range(2)]
    assert first[0] == first[1] == next(iter(b.inputs()))
    items = a.inputs()
    assert next(items) != next(items)
    assert len(first[0]["example_tasks"]) == 8 and set(first[0]["example_tasks"]) <= set(seeds)


def test_filters_of_the_paper():
    program = SelfInstruct(seed_tasks=SEED_TASKS)
    seed = load_seed_tasks(SEED_TASKS)[0]
    assert program.accept(_record(seed)).startswith("near-copy (ROUGE-L 1.00)")
    assert program.accept(_record("Draw a picture of a cat sitting on a mat.")).startswith("needs more than text")
    assert program.accept(_record("Hello")).startswith("task too short")
    assert program.accept(_record("{new_task}")) is not None
    assert (
        program.accept(_record("List three rivers of Spain and their lengths.", "{response}"))
        == "copied a template placeholder"
    )
    assert (
        program.accept(_record("List three rivers of Spain and their lengths.", "country_name"))
        == "copied a template placeholder"
    )
    assert program.accept(_record("List three rivers of Spain and their lengths.", "  ")) == "empty response"
    novel = _record("List three rivers of Spain and their lengths.")
    assert program.accept(novel) is None
    program.remember(novel)  # kept tasks join the pool: a near-copy of it is now dropped
    assert program.accept(_record("List three rivers of Spain and their length.")).startswith("near-copy")


def test_clean_task():
    assert clean_task("1. Task: Name a fruit.\n\nMore text") == "Name a fruit."
    assert clean_task('"Explain tides."') == "Explain tides."


def test_run_writes_messages_with_provenance(tiny_engine, tmp_path):
    program = SelfInstruct(seed_tasks=SEED_TASKS, num_examples=2, min_words=1)
    summary = generate(
        program,
        engine=tiny_engine,
        run=tmp_path / "run",
        num_records=5,
        sampling=Sampling(max_tokens=48, temperature=1.0),
        seed=3,
        json_max_chars=40,
    )
    records = list(summary.run.iter_records())
    assert summary.status == "completed" and len(records) == 5 == summary.kept
    for r in records:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        prov = r["provenance"]
        assert prov["program"] == "self_instruct" and prov["engine"] == "transformers"
        assert prov["model"] == "tiny-random-chat" and prov["sampling"]["max_tokens"] == 48
        assert isinstance(prov["seed"], int) and prov["attempt"] >= 0
    manifest = summary.run.manifest()
    assert manifest["counts"]["kept"] == 5 and manifest["status"] == "completed"
    for name in ("config.yaml", "identity.json", "versions.json", "cache.sqlite"):
        assert (summary.run.path / name).exists() or name == "config.yaml"
    assert "torch" in (summary.run.path / "versions.json").read_text()
