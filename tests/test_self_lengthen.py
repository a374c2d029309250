"""Self-Lengthen on the tiny random model, in-process through the controller: every stage of two rounds runs,
the two roles keep separate checkpoints that each round hands on, the data files have the shapes TRL takes,
the held-out figures are computed from the answers on disk, and a stage re-entered after a kill rebuilds the
same outputs from its run directories without asking the model again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synthloop.judges.length import count_words, length_score
from synthloop.loops import run_loop
from synthloop.loops.config import LoopConfig
from synthloop.loops.recipes.self_lengthen.stages import LOOPING_SHARE
from synthloop.loops.recipes.self_lengthen.text import round_words
from synthloop.runs.jsonl import read_jsonl
from synthloop.runs.run_dir import RunDir

SHARED = __import__("conftest").SHARED
STAGES = ["tasks", "sample", "extend", "filter", "build", "train-generator", "train-extender", "evaluate"]


def lengthen_config(out: Path, **overrides) -> dict:
    config = {
        "output_dir": str(out),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "tasks": {"train": {"kind": "questions", "categories": ["generic", "writing"],
                            "paths": [str(SHARED / "mt_bench" / "vicuna_bench_question.jsonl")]},
                  "eval": {"kind": "longbench_write", "dir": str(SHARED / "longbench_write"), "max_length": 150,
                           "ruler_lengths": [100]},
                  "eval_count": None, "per_round": 3},
        "sampling": {"n": 2, "max_tokens": 40, "temperature": 1.0},
        "eval": {"max_tokens": 24},
        "judges": [{"kind": "length", "min_score": 0.5}],
        # the tiny model writes noise: thresholds that let its text through, so every stage has data
        "recipe": {"kind": "self_lengthen", "targets": [20, 40], "min_draft_words": 1, "min_growth": 1.0,
                   "include_truncated": True,
                   "filters": [{"kind": "repetition", "field": "text", "max_share": 0.99},
                               {"kind": "similarity", "field": "expansions", "to": "parts", "min": -1.0},
                               {"kind": "similarity", "field": "text", "to": "instruction", "min": -1.0}],
                   "quality": {"llm": {"sampling": {"max_tokens": 48}}}},
        "train": {"sft": {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-3}},
        "rounds": 2,
        "concurrency": 8,
        "plot": False,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def lengthened(tmp_path_factory):
    out = tmp_path_factory.mktemp("lengthen")
    summary = run_loop(LoopConfig.model_validate(lengthen_config(out)), out / "sl", progress=False)
    return out / "sl", summary


def _state(run: Path) -> dict:
    return json.loads((run / "state.json").read_text())


def test_every_stage_runs_with_two_roles(lengthened):
    run, summary = lengthened
    state = _state(run)
    assert [(r["round"], r["status"], r["label"], list(r["stages"])) for r in state["rounds"]] == [
        (0, "done", "baseline", ["evaluate"]),
        (1, "done", "target 20w", STAGES),
        (2, "done", "target 40w", STAGES)]
    r1, r2 = state["rounds"][1], state["rounds"][2]
    # both roles start from the base model, train into their own checkpoints, and hand them to the next round
    assert r1["checkpoint_in"] == {"policy": "tiny-random-chat", "extender": "tiny-random-chat"}
    assert r2["checkpoint_in"] == {"policy": str(run / "round-001/train-generator/model"),
                                   "extender": str(run / "round-001/train-extender/model")}
    assert state["checkpoints"] == {"policy": str(run / "round-002/train-generator/model"),
                                    "extender": str(run / "round-002/train-extender/model")}
    assert r2["stages"]["train-generator"]["outputs"]["base_model"] == r2["checkpoint_in"]["policy"]
    assert r2["stages"]["train-extender"]["outputs"]["base_model"] == r2["checkpoint_in"]["extender"]
    # round 2 drafted with round 1's Generator and extended with round 1's Extender
    drafts = next(RunDir(run / "round-002/samples").iter_records())
    extension = next(RunDir(run / "round-002/extend/part-0").iter_records())
    assert drafts["provenance"]["model"] == r2["checkpoint_in"]["policy"]
    assert extension["provenance"]["model"] == r2["checkpoint_in"]["extender"]
    assert summary["final_checkpoint"] == state["checkpoints"]["policy"]


def test_round_data(lengthened):
    run, _ = lengthened
    tasks = list(read_jsonl(run / "round-002/tasks.jsonl"))
    assert len(tasks) == 3 and all(t["target"] == 40 and t["prompt"].startswith(t["instruction"]) for t in tasks)
    assert all("40" in t["prompt"][len(t["instruction"]):] for t in tasks)
    extended = list(read_jsonl(run / "round-001/extend/extended.jsonl"))
    assert len(extended) == 6  # 3 tasks x 2 drafts
    ok = [e for e in extended if e["failed"] is None]
    assert ok, [e["failed"] for e in extended]
    for item in ok:
        assert len(item["expansions"]) == len(item["parts"]) == len(item["requests"]) >= 1
        assert item["text"] == "\n\n".join(item["expansions"])
        assert item["words"] == count_words(item["text"]) and item["words"] >= item["draft_words"]
        first = item["requests"][0][-1]["content"]
        assert item["instruction"] in first and item["parts"][0] in first
    for item in extended:
        if item["failed"] is not None:
            assert item["failed"].startswith(("too little growth", "expansion", "empty", "draft"))
    kept = list(RunDir(run / "round-001/filtered").iter_records())
    report = json.loads((run / "round-001/filtered/report.json").read_text())
    assert [f["filter"] for f in report["filters"]] == ["repetition", "similarity", "similarity"]
    assert report["counts"]["in"] == len(ok) and len(kept) == report["counts"]["out"]
    generator = list(read_jsonl(run / "round-001/data/sft-generator.jsonl"))
    extender = list(read_jsonl(run / "round-001/data/sft-extender.jsonl"))
    assert len(generator) == len(kept) and len(extender) == sum(len(k["expansions"]) for k in kept)
    for row, item in zip(generator, kept, strict=True):
        # the demand states the extension's own (rounded) length: the number asked is the number written
        assert row["prompt"][-1]["content"].startswith(item["instruction"])
        assert str(round_words(item["words"])) in row["prompt"][-1]["content"][len(item["instruction"]):]
        assert row["completion"] == [{"role": "assistant", "content": item["text"]}]
    assert extender[0]["prompt"] == kept[0]["requests"][0]
    assert extender[0]["completion"][0]["content"] == kept[0]["expansions"][0]


def test_held_out_figures(lengthened):
    run, summary = lengthened
    for r, metrics in enumerate(summary["rounds"]):
        rows = list(read_jsonl(run / f"round-{r:03d}" / "eval-length.jsonl"))
        assert len(rows) == 7 and {row["set"] for row in rows} == {"en", "ruler"}  # 3 English prompts + 4 ruler
        answers = {rec["id"]: rec["samples"][0]["text"] for rec in RunDir(run / f"round-{r:03d}/eval").iter_records()}
        for row in rows:
            assert row["words"] == count_words(answers[row["id"]])
            assert row["sl"] == pytest.approx(length_score(row["required"], row["words"]), abs=0.01)
            assert row["quality"] is None or 1 <= row["quality"] <= 10
        assert metrics["eval_sl"] == pytest.approx(sum(row["sl"] for row in rows) / len(rows), abs=0.01)
        looping = [row["repetition"] > LOOPING_SHARE for row in rows]
        assert metrics["eval_looping"] == pytest.approx(sum(looping) / len(rows), abs=1e-4)
        assert metrics["eval_sl_loops_zero"] == pytest.approx(
            sum(0 if loop else row["sl"] for row, loop in zip(rows, looping, strict=True)) / len(rows), abs=0.01)
        for key in ("eval_words", "eval_sl_en", "eval_sl_ruler", "eval_repetition", "eval_relevance",
                    "eval_quality_failed", "eval_score"):
            assert metrics[key] is not None, key
        assert metrics["eval_quality_failed"] < len(rows)  # the judge answered on the tiny model too
    r1 = summary["rounds"][1]
    for key in ("drafts", "draft_words", "extended", "extensions_kept", "generator_rows", "extender_rows",
                "generator_sft_steps", "extender_sft_steps", "target_words"):
        assert r1[key] is not None, key
    assert r1["drafts"] == 6 and r1["target_words"] == 20 and r1["generator_sft_steps"] == 1


def test_reentered_stages_rebuild_the_same_outputs(lengthened, tmp_path):
    """As after a kill in round 2's extend stage, once its first part had run: the rerun re-enters extend,
    answers part 0 from its run directory (no new request), and rebuilds identical extensions and data."""
    run, _ = lengthened
    copy = tmp_path / "sl"
    shutil.copytree(run, copy)
    r2 = copy / "round-002"
    before = {p: (r2 / p).read_text() for p in
              ("extend/extended.jsonl", "data/sft-generator.jsonl", "data/sft-extender.jsonl")}
    state = _state(copy)
    rnd = state["rounds"][2]
    rnd["stages"] = {k: v for k, v in rnd["stages"].items() if k in ("tasks", "sample")}
    rnd["status"], rnd["metrics"] = "running", {}
    state["checkpoints"] = dict(rnd["checkpoint_in"])
    (copy / "state.json").write_text(json.dumps(state))
    (r2 / "extend/extended.jsonl").unlink()
    for sub in ("data", "filtered", "train-generator", "train-extender", "eval", "eval-judged", "extend/part-1"):
        shutil.rmtree(r2 / sub, ignore_errors=True)
    part0 = sorted(p.name for p in (r2 / "extend/part-0/records").iterdir())
    summary = run_loop(LoopConfig.model_validate(lengthen_config(tmp_path)), copy, progress=False)
    assert summary["rounds_done"] == 2 and _state(copy)["rounds"][2]["status"] == "done"
    for path, text in before.items():
        assert (r2 / path).read_text() == text, path
    # part 0 was complete: no new records part, every record once
    after = RunDir(r2 / "extend/part-0")
    assert sorted(p.name for p in (r2 / "extend/part-0/records").iterdir() if p.stat().st_size) == part0
    ids = [r["id"] for r in after.iter_records()]
    assert len(ids) == len(set(ids))
