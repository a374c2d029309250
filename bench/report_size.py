"""How big and how fast `synthloop report` is on large generate runs: 10,000 and 100,000 records (the page embeds
at most 20,000), records made of real text (GSM8K questions and answers, ~700 characters a record) with a third
dropped by a filter. Times writing the report, then opening it in headless Chromium: first table drawn,
filtering to the dropped records, a search over everything embedded.

    .venv/bin/python bench/report_size.py            # -> bench/results/report_size.json
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

from synthloop.report import write_report  # noqa: E402
from synthloop.runs.jsonl import AppendLog  # noqa: E402
from synthloop.runs.run_dir import RunDir  # noqa: E402

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REASONS = ["near duplicate of record {j} (Jaccard 0.91)", "refusal: the response declines",
           "length: 3 words < 5"]


def make_run(path: Path, records: int) -> RunDir:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    run = RunDir.open(path, identity={"bench": records}, kind="generate", config_yaml="bench: true\n")
    kept = dropped = 0
    with AppendLog(run.records_dir / "part-00000.jsonl") as shard, AppendLog(run.filtered_path) as filtered:
        for i, row in zip(range(records), itertools.cycle(rows), strict=False):
            record = {"id": i, "messages": [{"role": "user", "content": row["question"]},
                                            {"role": "assistant", "content": row["answer"]}],
                      "provenance": {"program": "bench", "model": "smollm2-135m-instruct", "seed": i, "attempt": 0}}
            if i % 3 == 2:
                filtered.write({"id": i, "reason": REASONS[i % len(REASONS)].format(j=i - 1), "record": record})
                dropped += 1
            else:
                shard.write(record)
                kept += 1
    run.update_manifest(status="completed", seconds=600.0, concurrency=64,
                        counts={"kept": kept, "filtered": dropped, "failed": 0, "output_tokens": records * 120,
                                "prompt_tokens": records * 300, "cache_hits": 0})
    return run


def in_browser(page_path: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        started = time.perf_counter()
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_selector("#records-table tbody tr.row")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        page.select_option("#status-filter", "dropped")
        page.wait_for_selector("#match-count:has-text('match')")
        dropped = time.perf_counter() - started
        page.select_option("#status-filter", "all")
        started = time.perf_counter()
        page.fill("#search", "eggs")  # the first search also builds the lower-cased text of every record
        page.wait_for_selector("#match-count:has-text('match')")
        search = time.perf_counter() - started - 0.15  # the input is debounced by 150 ms
        memory = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
        browser.close()
    return {"open_to_first_table_s": round(loaded, 2), "filter_dropped_s": round(dropped, 3),
            "first_search_s": round(search, 3), "js_heap_mib": round(memory / 2**20, 1) if memory else None}


def main() -> None:
    results = {"machine": machine(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        for records in (10_000, 100_000):
            run = make_run(Path(tmp) / f"run-{records}", records)
            source_mib = sum(p.stat().st_size for p in [*run.record_parts(), run.filtered_path]) / 2**20
            started = time.perf_counter()
            page = write_report(run.path)
            seconds = time.perf_counter() - started
            figures = {"records": records, "run_files_mib": round(source_mib, 1), "write_report_s": round(seconds, 2),
                       "report_mib": round(page.stat().st_size / 2**20, 2), **in_browser(page)}
            print(figures, flush=True)
            results["runs"].append(figures)
    save("report_size", results)


if __name__ == "__main__":
    main()
