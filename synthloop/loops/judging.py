"""Judging a loop's samples: every sample of every task scored by the loop's panel of judges (the `judges` section,
any judge spec: see `synthloop.judges.spec` and `synthloop.judges.panel`), written to append-only parts.

Each judge sees the task's prompt, the sample, and the task's `reference` column (or the column its
`reference_field` names): a gold answer, an IFEval row, tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from synthloop.judges.base import JudgeItem
from synthloop.judges.panel import Panel
from synthloop.runs.jsonl import AppendLog, next_part, read_jsonl


def judge_records(records: Iterable[dict[str, Any]], panel: Panel, out_dir: Path, *, batch: int = 64,
                  on_progress=None) -> Iterator[dict[str, Any]]:
    """Score every sample of every record into `out_dir/part-*.jsonl` (one part per session; a record already
    judged in an earlier session is skipped), yielding each judged record as it is written. Each sample gets the
    panel's combined `score`, `accepted`, each judge's `scores` and `notes`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {row["id"] for row in iter_judged(out_dir)}
    todo = (r for r in records if r["id"] not in done)
    with AppendLog(next_part(out_dir)) as log:
        while True:
            chunk = [r for _, r in zip(range(batch), todo, strict=False)]
            if not chunk:
                return
            verdicts = iter(panel.score_with(lambda member, chunk=chunk: [
                JudgeItem(prompt=prompt_text(r), response=s["text"], reference=r.get(member.reference_field or
                                                                                     "reference"))
                for r in chunk for s in r["samples"]]))
            for record in chunk:
                samples = [{**s, **next(verdicts).as_dict()} for s in record["samples"]]
                judged = {k: v for k, v in record.items() if k not in ("samples", "provenance")}
                judged["samples"] = samples
                log.write(judged)
                if on_progress:
                    on_progress(1)
                yield judged


def iter_judged(out_dir: Path) -> Iterator[dict[str, Any]]:
    """Judged records of every session, each id once (the first written wins)."""
    seen: set[int] = set()
    for part in sorted(Path(out_dir).glob("part-*.jsonl")):
        for row in read_jsonl(part):
            if row["id"] not in seen:
                seen.add(row["id"])
                yield row


def prompt_text(record: dict[str, Any]) -> str:
    """The task's prompt as text: its `prompt`, else the last user turn of the messages it was sampled with."""
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in record.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""
