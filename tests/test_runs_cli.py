"""The run-directory commands and exports: runs list/show/export, models list."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from cli_driver import run_in_process as run_cli
from datasets import load_from_disk
from helpers import tiny_generate_config, write_config

from synthloop.runs.run_dir import RunDir


def test_generate_show_list_export(tmp_path):
    config = write_config(tmp_path / "demo.yaml", tiny_generate_config(tmp_path / "runs", num_records=4))
    result = run_cli("generate", str(config), "--set", "show_examples=1")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "demo"
    assert f"run {run}" in result.stderr.replace("\n", "") or "records kept" in result.stderr
    assert "self_instruct 4/4 records" in result.stderr  # the run's progress line, with its total
    assert (run / "log.txt").is_file()  # library output of the command (the console keeps ours)
    listing = run_cli("runs", "list", str(tmp_path / "runs"))
    assert "demo" in listing.stdout and "completed" in listing.stdout
    shown = run_cli("runs", "show", str(run))
    assert shown.returncode == 0 and '"messages"' in shown.stdout

    records = list(RunDir(run).iter_records())
    for fmt, dest in [
        ("jsonl", tmp_path / "out.jsonl"),
        ("parquet", tmp_path / "out.parquet"),
        ("hf", tmp_path / "out_hf"),
    ]:
        exported = run_cli("runs", "export", str(run), "--format", fmt, "--out", str(dest))
        assert exported.returncode == 0, exported.stderr
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == records
    assert pq.read_table(tmp_path / "out.parquet").num_rows == len(records)
    dataset = load_from_disk(str(tmp_path / "out_hf"))
    assert dataset.num_rows == len(records) and dataset[0]["messages"] == records[0]["messages"]

    missing = run_cli("runs", "show", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a run directory" in missing.stderr


def test_models_list():
    result = run_cli("models", "list")
    assert result.returncode == 0
    assert "smollm2-135m-instruct" in result.stdout and "tiny-random-chat" in result.stdout
