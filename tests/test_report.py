"""`synthloop report`: collect on real small runs (a generate run on the tiny model whose program's own filter
drops records, a filter run over it, a two-round tiny loop, all through the real CLI, which writes each report
at the end of the run), the dataset card of `runs export --format hf`, and the pages themselves in headless
Chromium (Debian's package, driven by Playwright, kept off the network)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import ROOT, popen_cli, run_cli, tiny_generate_config, write_config
from test_loop import loop_config

from synthloop.report import NotARunError, collect, write_report
from synthloop.runs.jsonl import read_jsonl
from synthloop.runs.lineage import hf_licence, source_licence
from synthloop.runs.run_dir import RunDir

CHROMIUM = Path("/usr/bin/chromium")
#: headless, and nothing that dials out (without these Chromium keeps contacting Google's services)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A generate run, a filter run over it and a two-round loop, each made by the CLI (in parallel: the loop
    in the background while the generate and filter runs go)."""
    tmp = tmp_path_factory.mktemp("report")
    out = tmp / "runs"
    loop = loop_config(out, rounds=2, tasks={"train": {"kind": "arithmetic", "seed": 1},
                                             "eval": {"kind": "arithmetic", "seed": 2}, "eval_count": 6,
                                             "per_round": 4},
                       sampling={"n": 2, "max_tokens": 8, "temperature": 1.0}, eval={"max_tokens": 8},
                       train={"plan": ["sft"], "sft": {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-3}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))
        # two torch processes at once on 2 cores: one thread each, or their OpenMP threads spin against each other
        # (measured on a loaded machine: 82 s for both instead of 142 s)
        mp.setenv("OMP_NUM_THREADS", "1")
        loop_proc = popen_cli("loop", str(write_config(tmp / "loop.yaml", loop)))  # its judge: tests/loop_judges.py
        try:
            gen = run_cli("generate", str(write_config(tmp / "gen.yaml", tiny_generate_config(out, num_records=20))))
            assert gen.returncode == 0, gen.stderr[-3000:]
            filt = run_cli("filter", str(out / "gen"), "--name", "gen-filtered", "--set", f"output_dir={out}")
            assert filt.returncode == 0, filt.stderr[-3000:]
            loop_log = loop_proc.communicate(timeout=600)[0]
        finally:
            if loop_proc.poll() is None:
                loop_proc.kill()
    assert loop_proc.returncode == 0, loop_log[-3000:]
    return {"gen": out / "gen", "filter": out / "gen-filtered", "loop": out / "loop",
            "logs": {"gen": gen.stderr + gen.stdout, "filter": filt.stderr + filt.stdout, "loop": loop_log}}


def _dropped(run: Path) -> dict[str, str]:
    return {str(r["id"]): r["reason"] for r in read_jsonl(run / "filtered.jsonl")}


# -- collect ---------------------------------------------------------------------------------------------------

def test_each_run_wrote_its_report_at_the_end(runs):
    for kind in ("gen", "filter", "loop"):
        page = runs[kind] / "report.html"
        assert page.is_file() and page.stat().st_size > 10_000, kind
        assert f"report: {page}" in runs["logs"][kind].replace("\n", ""), runs["logs"][kind][-2000:]
        assert "report not written" not in runs["logs"][kind]


def test_collect_generate_run(runs):
    run = RunDir(runs["gen"])
    kept, dropped = list(run.iter_records()), _dropped(run.path)
    assert len(kept) == 20 and dropped, "the program's own filter should drop some tiny-model records"
    data = collect(run.path)
    records = data["records"]
    assert data["kind"] == "generate" and data["loop"] is None
    assert (records["kept"], records["dropped"], records["total"]) == (20, len(dropped), 20 + len(dropped))
    assert sum(records["reasons"].values()) == len(dropped) and records["left_out"] == 0
    rows = records["rows"]
    assert sorted(str(r["id"]) for r in rows if r["status"] == "dropped") == sorted(dropped)
    assert all(r["reason"] == dropped[str(r["id"])] for r in rows if r["status"] == "dropped")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert len(records["lengths"]["kept"]) == 20 and len(records["lengths"]["dropped"]) == len(dropped)
    figures = dict(records["figures"])
    output_tokens = run.manifest()["counts"]["output_tokens"]
    assert figures["output tokens"].startswith(f"{output_tokens:,}") and "mean latency per item (estimated)" in figures
    lineage = data["lineage"]
    assert lineage["models"] == ["tiny-random-chat"] and lineage["program"] == "self_instruct"
    assert lineage["sources"] == [{"path": str(ROOT.parent / "shared/data/self_instruct/seed_tasks.jsonl"),
                                   "licence": "Apache-2.0"}]


def test_cap_keeps_room_for_dropped_records_and_says_what_is_left_out(runs, tmp_path):
    dropped = len(_dropped(runs["gen"]))
    records = collect(runs["gen"], cap=10)["records"]
    assert records["embedded"] == 10 and records["left_out"] == records["total"] - 10
    # 10 kept records would fill the page: the dropped ones still get half of it
    assert sum(r["status"] == "dropped" for r in records["rows"]) == min(dropped, 5)
    assert records["kept"] == 20  # counts and histograms stay over every record
    page = write_report(runs["gen"], tmp_path / "capped.html", cap=10).read_text()
    assert 'id="left-out"' in page and f"holds 10 of the run's {records['total']} records" in page


def test_collect_filter_run(runs):
    data = collect(runs["filter"])
    records, dropped = data["records"], _dropped(runs["filter"])
    assert data["kind"] == "filter"
    assert [f["filter"] for f in records["filters"]] == ["exact_dedup", "near_dedup", "refusal", "length"]
    assert records["dropped"] == len(dropped) and records["kept"] == len(list(RunDir(runs["filter"]).iter_records()))
    assert all(r["filter"] for r in records["rows"] if r["status"] == "dropped")
    # the filter's source is the generate run: its licence is that run's source's
    assert data["lineage"]["sources"][0]["licence"] == "Apache-2.0"


def test_collect_loop(runs):
    run = runs["loop"]
    loop = collect(run)["loop"]
    state = json.loads((run / "state.json").read_text())
    assert [m["round"] for m in loop["rounds"]] == [0, 1, 2] and loop["metric"] == "eval_accuracy"
    lineage = {r["round"]: r for r in loop["lineage"]}
    assert lineage[1]["checkpoint_in"] == {"policy": "tiny-random-chat"}
    assert lineage[1]["checkpoint_out"] == {"policy": "round-001/train-sft/model"}
    assert lineage[2]["checkpoint_in"] == {"policy": "round-001/train-sft/model"}
    assert lineage[2]["train"][0]["method"] == "sft" and lineage[2]["train"][0]["steps"] == 1
    assert lineage[1]["judges"][0].startswith("math_answer") and lineage[1]["recipe"] == "expert_iteration"
    counts = {(c["stage"], c["what"]): c["values"] for c in loop["stage_counts"]}
    samples = state["rounds"][1]["stages"]["judge"]["outputs"]["samples"]
    assert counts[("judge", "sample_samples")] == {"1": samples, "2": samples} == {"1": 8, "2": 8}
    assert counts[("evaluate", "eval_tasks")] == {"0": 6, "1": 6, "2": 6}
    ba = loop["before_after"]
    assert (ba["before_round"], ba["after_round"], ba["total"], len(ba["tasks"])) == (0, 2, 6, 6)
    assert sum(ba["counts"].values()) == 6
    first = next(read_jsonl(run / "round-000" / "eval-judged" / "part-00000.jsonl"))
    task = next(t for t in ba["tasks"] if t["key"] == first["task_id"])
    assert task["before"]["text"] == first["samples"][0]["text"][:2000]
    assert task["before"]["accepted"] == first["samples"][0]["accepted"]
    assert [s["round"] for s in loop["sample_scores"]] == [1, 2]
    assert all(len(s["accepted"]) + len(s["rejected"]) == 8 for s in loop["sample_scores"])


def test_not_a_run_is_one_line(runs, tmp_path):
    with pytest.raises(NotARunError, match="not a run directory"):
        collect(tmp_path)
    result = run_cli("report", str(tmp_path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and lines == [f"error: {tmp_path}: not a run directory (no manifest.json)"]
    ok = run_cli("report", str(runs["gen"]), "--out", str(tmp_path / "out" / "r.html"))
    assert ok.returncode == 0 and ok.stdout.strip() == str(tmp_path / "out" / "r.html")


def test_a_report_that_cannot_be_written_does_not_fail_the_run(tmp_path, capsys):
    from synthloop.cli.report import after_run

    after_run(tmp_path / "missing")
    err = capsys.readouterr().err
    assert "warning: report not written: NotARunError" in err and len(err.strip().splitlines()) == 1


# -- dataset card ----------------------------------------------------------------------------------------------

def test_hf_export_writes_a_dataset_card(runs, tmp_path):
    from datasets import load_from_disk
    from huggingface_hub import DatasetCard

    result = run_cli("runs", "export", str(runs["filter"]), "--format", "hf", "--out", str(tmp_path / "ds"))
    assert result.returncode == 0, result.stderr[-2000:]
    dataset = load_from_disk(str(tmp_path / "ds"))
    card = DatasetCard.load(tmp_path / "ds" / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "apache-2.0" and meta["size_categories"] == ["n<1K"]
    assert meta["dataset_info"]["splits"] == [{"name": "train", "num_examples": len(dataset)}]
    assert [f["name"] for f in meta["dataset_info"]["features"]] == list(dataset.features)
    ours = meta["synthloop"]
    assert ours["kind"] == "filter" and ours["models"] == ["tiny-random-chat"]
    assert ours["dropped"] == len(_dropped(runs["filter"])) and ours["sources"][0]["license"] == "Apache-2.0"
    assert [f["kind"] for f in ours["config"]["filters"]] == ["exact_dedup", "near_dedup", "refusal", "length"]
    assert f"{len(dataset)} records" in card.text and "Apache-2.0" in card.text


def test_source_licences(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "b").mkdir()
    (tmp_path / "data" / "README.md").write_text(
        "# data\n\n| file | rows | licence |\n|---|---|---|\n| `a/x.jsonl` | 3 | MIT |\n"
        "| a/y.jsonl | 1 | **check** |\n")
    (tmp_path / "data" / "b" / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# b\n")
    for name in ("a/x.jsonl", "a/y.jsonl", "a/z.jsonl", "b/w.csv"):
        (tmp_path / "data" / name).write_text("{}\n")
    found = {n: source_licence(tmp_path / "data" / n) for n in ("a/x.jsonl", "a/z.jsonl", "b/w.csv")}
    assert found == {"a/x.jsonl": "MIT", "a/z.jsonl": None, "b/w.csv": "cc-by-4.0"}
    assert source_licence(tmp_path / "nowhere.jsonl") is None
    assert hf_licence(["MIT", "MIT"]) == "mit" and hf_licence(["MIT", "Apache-2.0"]) is None
    assert hf_licence(["CC BY-NC 4.0 (data), check"]) == "cc-by-nc-4.0" and hf_licence([None]) is None


# -- in a real browser -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file() and not shutil.which("chromium"):
        pytest.fail("Chromium is not installed: run scripts/setup.sh as root (it installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run scripts/setup.sh (it is in the dev extra)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")),
                                     args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _open(browser, page_path: Path):
    """A page on the report, with every request and script error recorded."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    seen = {"requests": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(page_path.as_uri())
    return page, seen


def _shown_rows(page) -> dict[str, tuple[str, str]]:
    """Every row the records table shows for the current filter, page by page: id -> (status, reason)."""
    shown: dict[str, tuple[str, str]] = {}
    while True:
        for row in page.locator("#records-table tbody tr.row").all():
            shown[row.get_attribute("data-id")] = (row.get_attribute("data-status"),
                                                   row.locator("td.reason").inner_text())
        if page.locator("#next").is_disabled():
            return shown
        page.click("#next")


def test_generate_report_in_the_browser(runs, browser, tmp_path):
    run = RunDir(runs["gen"])
    kept, dropped = len(list(run.iter_records())), _dropped(run.path)
    page, seen = _open(browser, run.path / "report.html")
    assert page.inner_text("#count-kept") == str(kept) and page.inner_text("#count-dropped") == str(len(dropped))
    assert page.inner_text("#count-total") == str(kept + len(dropped))
    assert page.get_attribute("#match-count", "data-count") == str(kept + len(dropped))
    page.select_option("#page-size", "25")
    page.select_option("#status-filter", "dropped")
    shown = _shown_rows(page)
    assert shown == {i: ("dropped", reason) for i, reason in dropped.items()}
    page.select_option("#status-filter", "kept")
    assert page.get_attribute("#match-count", "data-count") == str(kept)
    assert set(_shown_rows(page)) == {str(r["id"]) for r in run.iter_records()}
    # search: a kept record's own text finds it; a record opens in full on a click
    record, word = next((r, m.group()) for r in run.iter_records()
                        if (m := re.search(r"[A-Za-z]{5,}", r["messages"][-1]["content"])))
    page.select_option("#status-filter", "all")
    page.fill("#search", word)
    page.wait_for_selector("#match-count:has-text('match')")
    assert str(record["id"]) in _shown_rows(page)
    row = page.locator(f'#records-table tbody tr.row[data-id="{record["id"]}"]')
    row.click()
    assert f'"id": {record["id"]}' in page.locator("#records-table tbody tr.detail:not([hidden]) pre").inner_text()
    page.fill("#search", "")
    page.wait_for_selector("#match-count:not(:has-text('match'))")
    page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)
    assert (tmp_path / "generate.png").stat().st_size > 20_000
    assert not seen["errors"] and all(u.startswith("file://") for u in seen["requests"]), seen
    page.close()


def test_filter_report_in_the_browser(runs, browser, tmp_path):
    dropped = _dropped(runs["filter"])
    filters = {str(r["id"]): r["filter"] for r in read_jsonl(runs["filter"] / "filtered.jsonl")}
    page, seen = _open(browser, runs["filter"] / "report.html")
    page.select_option("#status-filter", "dropped")
    assert _shown_rows(page) == {i: ("dropped", f"{r} [{filters[i]}]") for i, r in dropped.items()}
    page.screenshot(path=str(tmp_path / "filter.png"), full_page=True)
    assert not seen["errors"] and all(u.startswith("file://") for u in seen["requests"]), seen
    page.close()


def test_loop_report_in_the_browser(runs, browser, tmp_path):
    state = json.loads((runs["loop"] / "state.json").read_text())
    page, seen = _open(browser, runs["loop"] / "report.html")
    points = page.locator('#chart-rounds circle.pt[data-series="eval_accuracy"]')
    assert [points.nth(i).get_attribute("data-round") for i in range(points.count())] == \
        [str(r["round"]) for r in state["rounds"]] == ["0", "1", "2"]
    assert page.locator("#round-table tr").count() == 1 + 3
    rows = page.locator("#before-after-table tr[data-change]")
    assert rows.count() == 6
    page.check("#changed-only")
    unchanged = sum(1 for i in range(6) if rows.nth(i).get_attribute("data-change") in ("same", "only_one"))
    assert sum(1 for i in range(6) if rows.nth(i).is_visible()) == 6 - unchanged
    page.uncheck("#changed-only")
    lineage = page.inner_text("#lineage-table")
    assert "round-001/train-sft/model" in lineage and "math_answer" in lineage
    page.screenshot(path=str(tmp_path / "loop.png"), full_page=True)
    assert (tmp_path / "loop.png").stat().st_size > 20_000
    assert not seen["errors"] and all(u.startswith("file://") for u in seen["requests"]), seen
    page.close()


def test_hostile_text_stays_text_in_the_browser(browser, tmp_path):
    """Records holding markup that would end the page's <script> (or a lone surrogate, which UTF-8 cannot hold)
    are shown as text: nothing runs, nothing breaks, the JSON still parses."""
    from synthloop.judges.filters import run_filters
    from synthloop.judges.filters.simple import LengthConfig

    hostile = "</script><script>document.title='pwned'</script> <!-- <script> & 'quotes' <b>bold</b>"
    records = [{"id": 0, "prompt": "p", "response": hostile},
               {"id": 1, "prompt": "p", "response": "x"}]  # one word: dropped by min 2
    run_filters(records, [LengthConfig(min=2)], tmp_path / "hostile")
    with open(tmp_path / "hostile" / "records" / "part-00000.jsonl", "a") as part:  # as an imported file may hold
        part.write(json.dumps({"id": 2, "prompt": "p \ud800 broken", "response": "fine answer here"}) + "\n")
    page, seen = _open(browser, write_report(tmp_path / "hostile"))
    assert page.title().startswith("hostile") and not seen["errors"], seen
    assert page.inner_text("#count-kept") == "2" and page.inner_text("#count-dropped") == "1"
    page.locator('#records-table tbody tr.row[data-id="0"]').click()
    assert hostile in page.locator("#records-table tbody tr.detail:not([hidden]) pre").inner_text()
    assert page.locator("#records-table b").count() == 0  # the <b> stayed text
    page.close()
