"""The records of a generate or filter run for the report: kept and dropped (with the reason), counts, scores,
lengths, token and time figures, errors. Streams the files once; keeps at most `cap` records for the page.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

from synthloop.judges.preference_data import record_prompt_response
from synthloop.runs.run_dir import RunDir

#: records embedded in the page at most (all are counted); the rest stay in the run directory
RECORD_CAP = 20_000
#: characters kept of each string inside an embedded record
TEXT_CAP = 4_000
#: characters of prompt and response shown in the table (the whole record opens on a click)
PREVIEW = 160
ERROR_CAP = 500


def clip_strings(value: Any, limit: int = TEXT_CAP) -> Any:
    """`value` with every string cut to `limit` characters (the cut says how much is left out)."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}… [{len(value) - limit} more characters]"
    if isinstance(value, dict):
        return {k: clip_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clip_strings(v, limit) for v in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, list):
        users = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return str(users[-1].get("content", ""))
        return " ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("content", value.get("text", json.dumps(value, ensure_ascii=False))))
    return "" if value is None else str(value)


def prompt_response(record: dict[str, Any]) -> tuple[str, str]:
    """What a person reads first of a record: its (last) prompt and its response (a loop's samples: each)."""
    try:
        prompt, response = record_prompt_response(record)
        return _text(prompt), response
    except KeyError:
        pass
    prompt = next((record[k] for k in ("prompt", "instruction", "question", "messages", "text") if k in record), "")
    samples = record.get("samples")
    if isinstance(samples, list) and samples:
        response = "\n— ".join(str(s.get("text", s)) if isinstance(s, dict) else str(s) for s in samples)
    else:
        response = next((str(v) for k, v in record.items() if isinstance(v, str) and k not in ("prompt", "id")), "")
    return _text(prompt), response


def scores_of(record: dict[str, Any]) -> dict[str, float]:
    """Numeric judge scores on a record: `score`, `reward`, `scores.<judge>` (filters), per-sample `score`."""
    found: dict[str, float] = {}
    for key in ("score", "reward"):
        if isinstance(record.get(key), int | float) and not isinstance(record.get(key), bool):
            found[key] = float(record[key])
    if isinstance(record.get("scores"), dict):
        for name, value in record["scores"].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[str(name)] = float(value)
    samples = record.get("samples")
    if isinstance(samples, list):
        sample_scores = [float(s["score"]) for s in samples if isinstance(s, dict)
                         and isinstance(s.get("score"), int | float) and not isinstance(s.get("score"), bool)]
        if sample_scores:
            found["sample score (mean)"] = sum(sample_scores) / len(sample_scores)
    return found


def _row(record: dict[str, Any], status: str, reason: str = "", stage: str = "") -> dict[str, Any]:
    prompt, response = prompt_response(record)
    scores = {k: round(v, 4) if math.isfinite(v) else None for k, v in scores_of(record).items()}
    return {"id": record.get("id"), "status": status, "reason": reason, "filter": stage, "scores": scores,
            "prompt": prompt[:PREVIEW], "response": response[:PREVIEW], "record": clip_strings(record)}


def _dropped(run: RunDir) -> Iterator[tuple[dict[str, Any], str, str]]:
    for row in run.iter_filtered():
        record = row.get("record") if isinstance(row.get("record"), dict) else {"id": row.get("id")}
        record.setdefault("id", row.get("id"))
        yield record, str(row.get("reason", "")), str(row.get("filter", ""))


def reason_kind(reason: str) -> str:
    """A reason without its particulars ('judge: score 0.1 < 0.5' -> 'judge'), for counting."""
    return reason.split("(")[0].split(":")[0].strip() or "(no reason given)"


def _sort_key(row: dict[str, Any]) -> tuple:
    rid = row["id"]
    return (0, rid, "") if isinstance(rid, int | float) else (1, 0, str(rid))


def collect_records(run: RunDir, *, cap: int = RECORD_CAP) -> dict[str, Any]:
    """Counts over every record, up to `cap` of them for the page (dropped ones get at least half the room
    when both kinds do not fit), the score and length distributions, errors, figures."""
    kept_rows: list[dict[str, Any]] = []
    dropped_rows: list[dict[str, Any]] = []
    kept = dropped = 0
    reasons: Counter[str] = Counter()
    scores: dict[str, dict[str, list[float]]] = {}
    lengths: dict[str, list[float]] = {"kept": [], "dropped": []}

    def account(record: dict[str, Any], status: str) -> None:
        for name, value in scores_of(record).items():
            scores.setdefault(name, {"kept": [], "dropped": []})[status].append(value)
        lengths[status].append(float(len(prompt_response(record)[1].split())))

    for record in run.iter_records():
        kept += 1
        account(record, "kept")
        if len(kept_rows) < cap:
            kept_rows.append(_row(record, "kept"))
    for record, reason, stage in _dropped(run):
        dropped += 1
        reasons[reason_kind(reason)] += 1
        account(record, "dropped")
        if len(dropped_rows) < cap:
            dropped_rows.append(_row(record, "dropped", reason, stage))
    room_dropped = min(len(dropped_rows), max(cap - len(kept_rows), cap // 2))
    rows = kept_rows[: cap - room_dropped] + dropped_rows[:room_dropped]
    if all(isinstance(r["id"], int | float) for r in rows):
        rows.sort(key=_sort_key)
    errors = list(_errors(run))
    return {
        "total": kept + dropped, "kept": kept, "dropped": dropped,
        "embedded": len(rows), "left_out": kept + dropped - len(rows), "cap": cap,
        "reasons": dict(reasons.most_common()),
        "rows": rows,
        "score_names": sorted({name for r in rows for name in r["scores"]}),
        "scores": scores, "lengths": lengths,
        "errors": errors[:ERROR_CAP], "errors_total": len(errors),
        "failed_items": sum(1 for e in errors if e.get("final", True) and e.get("kind") != "request"),
        "figures": figures(run, kept, dropped),
        "filters": _filter_report(run),
    }


def _errors(run: RunDir) -> Iterator[dict[str, Any]]:
    for e in run.iter_errors():
        yield {"id": e.get("id"), "kind": e.get("kind", ""), "attempt": e.get("attempt"),
               "final": e.get("final", True), "reason": str(e.get("reason", ""))[:500], "time": e.get("time", "")}


def _filter_report(run: RunDir) -> list[dict[str, Any]]:
    path = run.path / "report.json"
    try:
        return json.loads(path.read_text()).get("filters", []) if path.is_file() else []
    except (OSError, json.JSONDecodeError):
        return []


def figures(run: RunDir, kept: int, dropped: int) -> list[tuple[str, str]]:
    """Token and time figures from the manifest, as (label, value) for the page."""
    m = run.manifest()
    counts = m.get("counts") or {}
    seconds = m.get("seconds")
    out_tok, in_tok = counts.get("output_tokens"), counts.get("prompt_tokens")
    failed = counts.get("failed", 0) or 0
    items = kept + dropped + failed
    rows: list[tuple[str, str]] = []
    if seconds is None and (run.path / "report.json").is_file():
        with_report = json.loads((run.path / "report.json").read_text())
        seconds = with_report.get("seconds")
    if seconds:
        rows.append(("wall time", f"{seconds:,.1f} s" + (f" over {m.get('resumed', 0) + 1} sessions"
                                                                       if m.get("resumed") else "")))
        if items:
            rows.append(("items finished per second", f"{items / seconds:,.2f}"))
        concurrency = m.get("concurrency")
        if concurrency and items:
            # Little's law: with `concurrency` items always in flight, each took about this long on average
            rows.append(("mean latency per item (estimated)",
                         f"{seconds * min(concurrency, items) / items:,.2f} s at {concurrency} in flight"))
    if out_tok is not None:
        rows.append(("output tokens", f"{out_tok:,}" + (f" ({out_tok / seconds:,.0f} tok/s)" if seconds else "")))
        if items:
            rows.append(("output tokens per item", f"{out_tok / items:,.1f}"))
    if in_tok is not None:
        rows.append(("prompt tokens", f"{in_tok:,}" + (f" ({in_tok / items:,.0f} per item)" if items else "")))
    if counts.get("cache_hits") is not None:
        rows.append(("calls answered from the run's cache", f"{counts['cache_hits']:,}"))
    for key, value in (counts.get("engine") or {}).items():
        if isinstance(value, int | float | str):
            rows.append((f"engine: {key}", f"{value:,}" if isinstance(value, int) else str(value)))
    return rows

