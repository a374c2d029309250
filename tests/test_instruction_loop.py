"""The instruction-following pipeline on the tiny model: a loop whose tasks the verifiable_instructions program
writes each round (decontaminated against the held-out IFEval prompts), judged by a panel (IFEval verifier and the
well_formed guard as gates, a rank-only judge), trained with SFT then DPO, evaluated with IFEval's metrics; a
SIGKILL while the tasks are being written resumes without writing a task twice; a schedule whose ticks take their
tasks from the program. The tiny model's text is noise: these tests check the pipeline, not what it learns.

The program's model calls go to a teacher engine, the loopback OpenAI server (its answers follow the requested
JSON schema; the tiny model on transformers decodes constrained JSON at a few tokens per second on busy cores);
the policy (the tiny model) samples, trains and is evaluated. The policy as its own task writer is the default
and runs in the measured SmolLM2 loop (configs/loop/instruction_following.yaml)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SEED_TASKS, kill_when, popen_cli, run_cli, write_config

from synthloop.configs import load_config
from synthloop.judges.base import JudgeItem
from synthloop.judges.panel import Panel
from synthloop.loops import run_loop
from synthloop.loops.config import LoopConfig
from synthloop.loops.pairs import preference_pairs, sft_examples
from synthloop.runs.jsonl import read_jsonl
from synthloop.runs.run_dir import RunDir
from synthloop.testing.openai_server import OpenAIServer

TESTS = ROOT / "tests"
IFEVAL = ROOT.parent / "shared" / "data" / "ifeval" / "input_data.jsonl"


@pytest.fixture(autouse=True)
def _test_judge_importable(monkeypatch):
    """The configs name the test judge `loop_judges:make`; CLI subprocesses must import it."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


@pytest.fixture(scope="module")
def teacher():
    """The task writer: a loopback OpenAI server answering within the request's JSON schema, 0.2 s per request."""
    with OpenAIServer(slots=4, latency_s=0.2) as server:
        yield {"kind": "openai", "model": server.model, "base_url": server.base_url, "api_key_env": "NO_KEY_NEEDED"}


def _ifeval_rows(n: int) -> list[dict]:
    return [json.loads(line) for line, _ in zip(IFEVAL.open(), range(n), strict=False)]


def _seed_file(path: Path, planted: list[str], count: int = 5) -> Path:
    """Self-instruct seed tasks, plus `planted` tasks (copies of held-out prompts) among them."""
    rows = [json.loads(line) for line, _ in zip(SEED_TASKS.open(), range(count), strict=False)]
    rows[1:1] = [{"instruction": text, "instances": [{"input": "", "output": ""}]} for text in planted]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


#: a panel no answer of the tiny model passes (max_tokens is far below 1000 words): no training data, so a round
#: that only needs its tasks checked skips training (and a schedule's tick keeps its current checkpoint)
REJECT_ALL = [{"kind": "well_formed", "min_words": 1000}]


def loop_config(out: Path, seeds: Path, teacher: dict, **overrides) -> dict:
    config = {
        "output_dir": str(out),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "tasks": {"train": {"kind": "program", "engine": teacher,
                            "program": {"kind": "verifiable_instructions", "seed_tasks": str(seeds),
                                        "rewrite": "constraints", "max_length_ratio": 100, "decontaminate": []},
                            "sampling": {"temperature": 1.0, "max_tokens": 64}},
                  "eval": {"kind": "ifeval", "path": str(IFEVAL)}, "eval_count": 4, "per_round": 6},
        "sampling": {"n": 3, "max_tokens": 12, "temperature": 1.0},
        "eval": {"max_tokens": 12},
        # the tiny model follows no constraint: the IFEval verifier ranks here (min_score 0), the guard gates nothing
        "judges": [{"kind": "ifeval", "min_score": 0.0}, {"kind": "well_formed", "min_words": 0},
                   {"kind": "python", "factory": "loop_judges:make", "gate": False}],
        "recipe": {"kind": "expert_iteration", "include_truncated": True, "max_per_task": 1},
        "train": {"plan": ["sft", "dpo"], "sft": {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-3},
                  "dpo": {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-3}},
        "rounds": 2,
        "concurrency": 8,
        "plot": False,
    }
    config.update(overrides)
    return config


def test_program_writes_each_rounds_tasks_and_ifeval_scores_every_round(tmp_path, teacher):
    held_out = _ifeval_rows(4)
    seeds = _seed_file(tmp_path / "seeds.jsonl", planted=[held_out[2]["prompt"]])
    run = tmp_path / "runs" / "loop"
    summary = run_loop(LoopConfig.model_validate(loop_config(tmp_path / "runs", seeds, teacher)), run, progress=False)
    assert summary["status"] == "completed" and summary["rounds_done"] == 2
    state = json.loads((run / "state.json").read_text())
    assert [list(r["stages"]) for r in state["rounds"]] == [
        ["evaluate"], ["tasks", "sample", "judge", "build", "train-sft", "evaluate"],
        ["tasks", "sample", "judge", "build", "train-dpo", "evaluate"]]
    drawn = []
    for r in (1, 2):
        outputs = state["rounds"][r]["stages"]["tasks"]["outputs"]
        tasks = list(read_jsonl(run / f"round-{r:03d}" / "tasks.jsonl"))
        dropped = list(read_jsonl(run / f"round-{r:03d}" / "tasks_dropped.jsonl"))
        records = {rec["id"]: rec for rec in RunDir(run / f"round-{r:03d}" / "task-writing").iter_records()}
        # every task is a program record: its prompt, and its IFEval row as the judges' reference
        assert len(tasks) == 6 and len({t["task_id"] for t in tasks}) == 6
        for task in tasks:
            record = records[int(task["task_id"].split("-")[1])]
            assert task["prompt"] == record["prompt"]
            assert task["reference"] == {k: record[k] for k in ("prompt", "instruction_id_list", "kwargs")}
        # the planted copy of held-out prompt 2 is written by the program and dropped by the loop, named
        copies = [rec for rec in records.values() if rec["base_task"] == held_out[2]["prompt"]]
        assert copies and len(dropped) == len(copies) and outputs["written"] == len(records)
        assert {(d["reason"], d["held_out"]) for d in dropped} == {("13-gram", "eval-2")}
        assert outputs["metrics"]["tasks_dropped_held_out"] == len(dropped) and outputs["metrics"]["tasks"] == 6
        drawn.append({(rec["base_task"], tuple(rec["instruction_id_list"])) for rec in records.values()})
    # SFT (round 1): one answer, the best accepted, per task; DPO pairs in round 2
    sft = list(read_jsonl(run / "round-001" / "data" / "sft.jsonl"))
    assert 0 < len(sft) <= 6 and max(Counter(row["task_id"] for row in sft).values()) == 1
    assert drawn[0] != drawn[1]  # a fresh program seed per round: other base tasks and constraints
    assert state["rounds"][2]["metrics"]["dpo_pairs"] > 0
    # IFEval's metrics every round, per family, the paired comparison with round 0, and the judges' means
    for r, metrics in enumerate(m["metrics"] for m in state["rounds"]):
        assert metrics["eval_ifeval_prompts"] == 4
        for level in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
            assert 0.0 <= metrics[f"eval_ifeval_{level}"] <= 1.0
        families = {i.split(":")[0] for row in held_out for i in row["instruction_id_list"]}
        assert {k.split(".", 1)[1] for k in metrics if k.startswith("eval_ifeval_family.")} == families
        assert {"eval_words", "eval_judge.verifier:ifeval", "eval_judge.distinct_chars"} <= set(metrics)
        assert ("eval_ifeval_p_value" in metrics) == (r > 0)
        saved = json.loads((run / f"round-{r:03d}" / "eval-ifeval.json").read_text())
        assert saved["prompts"] == 4 and len(saved["strict"]) == 4
    assert summary["rounds"][-1]["eval_ifeval_gained"] + summary["rounds"][-1]["eval_ifeval_lost"] <= 4


def test_sigkill_while_writing_tasks_then_resume_writes_no_task_twice(tmp_path):
    seeds = _seed_file(tmp_path / "seeds.jsonl", planted=[])
    with OpenAIServer(slots=4, latency_s=0.5) as server:  # ~8 requests a second: the kill lands mid-writing
        slow = {"kind": "openai", "model": server.model, "base_url": server.base_url, "api_key_env": "NO_KEY_NEEDED"}
        _kill_and_resume(tmp_path, seeds, slow)


def _kill_and_resume(tmp_path: Path, seeds: Path, teacher: dict) -> None:
    config = loop_config(tmp_path / "runs", seeds, teacher, rounds=1, judges=REJECT_ALL,
                         sampling={"n": 1, "max_tokens": 8, "temperature": 1.0})
    # a held-out set without IFEval rows: the killed process reaches task writing sooner (IFEval's checkers load
    # in seconds); decontamination against IFEval is the first test's business
    config["tasks"].update(per_round=16, eval_count=2, eval={"kind": "arithmetic", "seed": 1, "count": 2})
    config["train"] = {"plan": ["sft"], "sft": {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-3}}
    path = write_config(tmp_path / "loop.yaml", config)
    run = tmp_path / "runs" / "loop"
    writing = RunDir(run / "round-001" / "task-writing")
    proc = popen_cli("loop", str(path))
    kill_when(proc, lambda: writing.records_dir.is_dir() and sum(1 for _ in writing.iter_records()) >= 4,
               "round 1 task writing")
    before = list(writing.iter_records())
    assert 4 <= len(before) < 16 and not (run / "round-001" / "tasks.jsonl").exists()
    # the rerun in this process (what `synthloop loop` calls after loading the config): no second interpreter start
    summary = run_loop(load_config(LoopConfig, path), run, progress=False)
    assert summary["status"] == "completed"
    after = list(writing.iter_records())
    assert after[: len(before)] == before  # nothing written before the kill was lost or rewritten
    assert max(Counter(r["id"] for r in after).values()) == 1 and writing.manifest()["resumed"] == 1
    tasks = list(read_jsonl(run / "round-001" / "tasks.jsonl"))
    assert len(tasks) == 16 and len({t["task_id"] for t in tasks}) == 16
    state = json.loads((run / "state.json").read_text())
    assert state["rounds"][1]["status"] == "done"
    assert state["rounds"][1]["stages"]["tasks"]["outputs"]["written"] == len(after)


def test_well_formed_guard_and_the_panels_ranking():
    prompt = "Describe a river. Your entire response should be in English, and in all lowercase letters."
    row = {"prompt": prompt, "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]}
    panel = Panel.from_specs([{"kind": "ifeval"}, {"kind": "well_formed", "min_words": 5, "max_repeated_share": 0.3},
                              {"kind": "python", "factory": "loop_judges:make", "gate": False}])
    texts = ["the river is cold",                                                    # passes IFEval, too short
             "the river the river the river the river the river the river",         # passes IFEval, loops
             "the river runs cold and clear past the old mill at dawn.",            # passes both
             "The River runs cold and clear past the old mill at dawn.",            # fails IFEval
             "a wide brown river winds slowly through the green valley below us, carrying leaves."]  # passes both
    verdicts = panel.score([JudgeItem(prompt=prompt, response=t, reference=row) for t in texts])
    assert [v.scores["verifier:ifeval"] for v in verdicts] == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert [v.accepted for v in verdicts] == [False, False, True, False, True]
    assert verdicts[0].reason.startswith("verifier:well_formed: failed (too short: 4 word")
    assert "repeats itself" in verdicts[1].reason
    # the guard as a judge spec built through the union, with its own knobs
    loose = Panel.from_specs([{"kind": "well_formed", "min_words": 1, "max_repeated_share": 0.9}])
    assert loose.score([JudgeItem(prompt=prompt, response=texts[1])])[0].accepted
    # data: SFT keeps the best accepted answer; DPO pairs it with a rejected one, never a rejected one as chosen
    samples = [{"text": t, "finish_reason": "stop", **v.as_dict()} for t, v in zip(texts, verdicts, strict=True)]
    samples[3]["score"] = 5.0  # a rejected answer whose combined score is the highest (e.g. a reward model's logit)
    samples[4]["score"] = samples[2]["score"] + 0.1
    record = {"id": 0, "messages": [{"role": "user", "content": prompt}], "samples": samples}
    (best,) = sft_examples([record], max_per_task=1)
    assert best["completion"][0]["content"] == texts[4]
    (pair,) = preference_pairs([record])
    assert pair["chosen"][0]["content"] == texts[4] and pair["rejected"][0]["content"] in texts[:2]


def test_a_schedule_tick_takes_its_tasks_from_the_program(tmp_path, teacher):
    from synthloop.configs import load_config
    from synthloop.schedule.config import ScheduleConfig
    from synthloop.schedule.tick import run_tick

    seeds = _seed_file(tmp_path / "seeds.jsonl", planted=[])
    data = loop_config(tmp_path / "runs", seeds, teacher, name="written")
    for key in ("rounds",):
        data.pop(key)
    data["tasks"] = {**data["tasks"], "per_round": 4, "eval_count": 2}
    data["judges"] = REJECT_ALL  # what a tick trains on is the loop's business (tested above): no training here
    data["sampling"] = {"n": 1, "max_tokens": 8, "temperature": 1.0}
    data["train"] = {"plan": ["sft"], "sft": {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-3}}
    data["promotion"] = {"metric": "eval_score"}
    config = load_config(ScheduleConfig, data=data)
    directory = tmp_path / "runs" / "written"
    first = run_tick(config, directory, progress=False, config_yaml=yaml.safe_dump(data))
    assert (first.tick, first.round, first.status) == (1, 1, "done") and first.decision == "kept"
    assert first.inputs["tasks"] == 4 and first.inputs["written"] >= 4 and "records" not in first.inputs
    # no inbox: every tick writes fresh tasks and runs a round
    second = run_tick(config, directory, progress=False, config_yaml=yaml.safe_dump(data))
    assert (second.tick, second.round, second.status) == (2, 2, "done")
    rounds = [list(read_jsonl(directory / f"round-{r:03d}" / "tasks.jsonl")) for r in (1, 2)]
    assert [len(t) for t in rounds] == [4, 4] and {t["prompt"] for t in rounds[0]} != {t["prompt"] for t in rounds[1]}
    from synthloop.schedule.tick import tick_summary

    assert "task(s) written -> 4 kept" in tick_summary(second, directory)[0]
    # exactly one source: an inbox or a program
    both = {**data, "inbox": {"path": str(tmp_path / "inbox")}}
    neither = {**data, "tasks": {k: v for k, v in data["tasks"].items() if k != "train"}}
    for bad in (both, neither):
        with pytest.raises(ValueError, match=r"inbox|tasks\.train"):
            load_config(ScheduleConfig, data=bad)
    status = run_cli("schedule", "status", str(directory))
    assert status.returncode == 0 and "written by the verifiable_instructions program" in status.stdout + status.stderr
