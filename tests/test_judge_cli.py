"""The CLI end to end in subprocesses: judge train -> eval -> score, an LLM-judge eval, and filter."""

from __future__ import annotations

import json

from cli_driver import run_in_process as run_cli
from helpers import write_config

from synthloop.runs.run_dir import RunDir

SHARED = __import__("conftest").SHARED
HH = SHARED / "hh_rlhf" / "harmless-base_test.jsonl.gz"


def _records(path, n=6):
    rows = []
    for i in range(n):
        answer = "I'm sorry, but I can't help with that." if i == 4 else f"Here are {i + 2} tips about topic {i}."
        rows.append({"messages": [{"role": "user", "content": f"Give me tips about topic {i}."},
                                  {"role": "assistant", "content": answer}]})
    rows.append(dict(rows[0]))  # an exact duplicate
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_judge_train_eval_score(tmp_path):
    cfg = write_config(tmp_path / "judge.yaml", {
        "output_dir": str(tmp_path / "runs"),
        "data": {"hh_rlhf": str(HH), "limit": 16, "eval_limit": 8},
        "model": {"max_prompt_tokens": 16, "max_response_tokens": 16, "inference_dtype": "float32"},
        "train": {"epochs": 1, "batch_size": 8},
    })
    trained = run_cli("judge", "train", str(cfg))
    assert trained.returncode == 0, trained.stderr[-2000:]
    model = tmp_path / "runs" / "judge" / "model"
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["train_pairs"] == 16 and metrics["steps"] == 2
    assert metrics["sets"]["hh_rlhf_held_out"]["pairs"] == 8 and 0.0 <= metrics["held_out_accuracy"] <= 1.0
    assert "held out: hh_rlhf_held_out" in trained.stderr

    # the suite: the hh-rlhf held-out part, a dataset's held-out part and a named set, in one table
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": f"Tell me about topic {i}.", "chosen": f"Topic {i} is a "
                                         "subject with a long history; here is a short overview of it.",
                                         "rejected": "No."}) + "\n" for i in range(40)))
    eval_cfg = write_config(tmp_path / "judge_eval.yaml", {
        "output_dir": str(tmp_path / "runs"), "judge": {"kind": "reward_model", "path": str(model)},
        "data": {"hh_rlhf": str(HH), "eval_limit": 8,
                 "datasets": [{"path": str(prefs), "name": "mine", "held_out_fraction": 0.5}]},
        "sets": {"extra": {"path": str(prefs), "limit": 5}}})
    evaluated = run_cli("judge", "eval", str(eval_cfg))
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    report = json.loads((tmp_path / "runs" / "judge_eval" / "eval.json").read_text())
    assert set(report["sets"]) == {"hh_rlhf_held_out", "mine_held_out", "extra"}
    extra = report["sets"]["extra"]
    assert extra["pairs"] == 5 and extra["length_longer_wins"] == 1.0 and extra["length_shorter_wins"] == 0.0
    assert 0 <= extra["accuracy"] <= 1 and 0 <= extra["picks_longer"] <= 1 and extra["chance"] == 0.5
    assert all(name in evaluated.stderr for name in report["sets"]) and "picks longer" in evaluated.stderr

    one = run_cli("judge", "eval", str(eval_cfg), "--set", f"pairs.path={prefs}", "--set", "name=one")
    assert one.returncode == 0, one.stderr[-2000:]
    report = json.loads((tmp_path / "runs" / "one" / "eval.json").read_text())
    assert report["pairs"] == 40 and list(report["sets"]) == ["prefs"] and report["baselines"]["chance"] == 0.5

    score_cfg = write_config(tmp_path / "score.yaml", {
        "output_dir": str(tmp_path / "runs"), "input": {"path": str(_records(tmp_path / "recs.jsonl"))},
        "judge": {"kind": "reward_model", "path": str(model)}})
    scored = run_cli("judge", "score", str(score_cfg))
    assert scored.returncode == 0, scored.stderr[-2000:]
    records = list(RunDir(tmp_path / "runs" / "score").iter_records())
    assert len(records) == 7 and all(isinstance(r["scores"]["reward_model"], float) for r in records)


def test_llm_judge_eval_on_the_tiny_model(tmp_path):
    """The LLM-judge path of `judge eval` (what experiments/judge_accuracy.py runs on SmolLM2), on a random model."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
                             for i in range(4)))
    cfg = write_config(tmp_path / "llm_eval.yaml", {
        "output_dir": str(tmp_path / "runs"), "pairs": {"path": str(pairs)},
        "judge": {"kind": "llm", "engine": {"kind": "transformers", "model": "tiny-random-chat"},
                  "swap": True, "sampling": {"temperature": 1.0, "max_tokens": 48}, "rationale_chars": 4}})
    result = run_cli("judge", "eval", str(cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "runs" / "llm_eval" / "eval.json").read_text())
    assert report["pairs"] == 4 and report["failed_verdicts"] == 0
    assert {"accuracy_first_order", "accuracy_swap", "swap_consistency"} <= set(report)


def test_filter_command_on_a_dataset_and_errors(tmp_path):
    data = _records(tmp_path / "recs.jsonl")
    result = run_cli("filter", str(data), "--name", "clean", "--set", f"output_dir={tmp_path / 'runs'}",
                     "--decontaminate", str(SHARED / "ifeval" / "input_data.jsonl"))
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "runs" / "clean"
    report = json.loads((run / "report.json").read_text())
    assert report["counts"] == {"in": 7, "out": 5, "dropped": 2}
    assert [s["filter"] for s in report["filters"]] == ["exact_dedup", "near_dedup", "refusal", "length",
                                                         "decontaminate"]
    dropped = {(d["id"], d["filter"]) for d in RunDir(run).iter_filtered()}
    assert dropped == {(6, "exact_dedup"), (4, "refusal")}
    assert "kept 5 of 7" in result.stderr

    bad = run_cli("filter", str(data), "--min-score", "0.5")
    assert bad.returncode == 2 and "--min-score needs --judge" in bad.stderr and "Traceback" not in bad.stderr
    cfg = write_config(tmp_path / "f.yaml", {"input": {"path": str(data)}, "filters": [{"kind": "near_dedupe"}]})
    bad = run_cli("filter", str(cfg))
    assert bad.returncode == 2 and "filters.0" in bad.stderr and "Traceback" not in bad.stderr


def test_judge_eval_bad_preference_row_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n"
                   + json.dumps({"prompt": "p", "chosen": True, "rejected": "b"}) + "\n")
    cfg = write_config(tmp_path / "e.yaml", {"output_dir": str(tmp_path / "runs"), "pairs": {"path": str(bad)},
                                             "judge": {"kind": "reward_model", "path": str(tmp_path / "none")}})
    result = run_cli("judge", "eval", str(cfg))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{bad}:2: chosen is bool" in lines[0], result.stderr
