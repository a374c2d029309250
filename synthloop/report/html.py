"""Render the collected dict (`collect.py`) into one self-contained HTML file: the Jinja2 template, CSS and
JavaScript of `assets/` inlined, charts as inline SVG (`charts.py`), records as JSON the page searches, pages
and filters itself. No CDN, no network, no server: the file opens from disk.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from synthloop.report import charts

ASSETS = Path(__file__).with_name("assets")
#: (key, title) of the per-round line charts after the headline one; a key ending in * is a prefix
ROUND_CHARTS = [
    ("lengths", "mean answer length", ["eval_tokens", "sample_tokens", "eval_words", "draft_words",
                                       "extended_words"]),
    ("losses", "training loss", ["sft_loss", "dpo_loss", "redi_loss", "topr_loss", "grpo_reward_first",
                                 "grpo_reward_last"]),
    ("skills", "held-out accuracy per skill", ["eval_acc_*"]),
    ("perplexity", "held-out perplexity", ["eval_ppl", "eval_ppl_given_context", "control_eval_ppl",
                                           "control_eval_ppl_given_context"]),
]


@cache
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": False}  # `tojson` of small blocks
    env.filters["script_json"] = script_json
    env.filters["num"] = _num
    env.filters["metric"] = _metric
    return env


def script_json(value: Any) -> Markup:
    """`value` as compact JSON that is safe inside `<script type="application/json">`.

    Jinja's `tojson` escapes every <, >, & and ' (6 bytes each): a run of code or GSM8K's `<<48/2=24>>` grows by
    a tenth. Inside a script element only `</` (which could close it) and `<!--` (which changes how the rest is
    parsed) matter, and in JSON both can occur only inside strings, where `\\/` and `\\u003c` mean the same.
    Non-ASCII text stays UTF-8 (a \\uXXXX escape per character would triple non-English records)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("</", "<\\/").replace("<!--", "\\u003c!--"))


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else charts.fmt(value)


def _metric(value: Any, fmt: str) -> str:
    if value is None:
        return ""
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _keys(rounds: list[dict[str, Any]], wanted: list[str]) -> list[str]:
    keys: list[str] = []
    for key in wanted:
        if key.endswith("*"):
            keys += sorted({k for m in rounds for k in m if k.startswith(key[:-1])})
        elif any(m.get(key) is not None for m in rounds):
            keys.append(key)
    return keys


def _series(rounds: list[dict[str, Any]], keys: list[str]) -> list[tuple[str, str, list[float | None]]]:
    return [(k, k, [m.get(k) if isinstance(m.get(k), int | float) else None for m in rounds]) for k in keys]


def round_charts(loop: dict[str, Any]) -> list[Markup]:
    """The headline chart (id chart-rounds: the loop's metric, the control arm's, sample accuracy, pass@n),
    then lengths, losses, per-skill accuracy, perplexity, and seconds per stage."""
    rounds = loop["rounds"]
    if not rounds:
        return []
    xs = [m["round"] for m in rounds]
    labels = [str(m.get("label", "")) for m in rounds]
    metric = loop["metric"] if any(m.get(loop["metric"]) is not None for m in rounds) else "eval_accuracy"
    head = _keys(rounds, [metric, f"control_{metric}", "sample_accuracy", "sample_pass_at_n"])
    out = [charts.line_chart("chart-rounds", f"{metric} per round (0 = the starting model)", xs, labels,
                             _series(rounds, head))]
    for key, title, wanted in ROUND_CHARTS:
        keys = [k for k in _keys(rounds, wanted) if k not in head]
        if keys:
            out.append(charts.line_chart(f"chart-{key}", title, xs, labels, _series(rounds, keys)))
    stages = list(dict.fromkeys(k[len("seconds_"):] for m in rounds for k in m if k.startswith("seconds_")))
    out.append(charts.stacked_bars("chart-seconds", "seconds per stage", [str(x) for x in xs],
                                   [(s, [float(m.get(f"seconds_{s}") or 0) for m in rounds]) for s in stages],
                                   x_title="round"))
    return [c for c in out if c]


def record_charts(records: dict[str, Any]) -> list[Markup]:
    out = []
    for i, (name, groups) in enumerate(sorted(records["scores"].items())):
        out.append(charts.histogram(f"chart-score-{i}", f"judge score: {name}",
                                    [("kept", groups["kept"]), ("dropped", groups["dropped"])], x_title=name))
    lengths = records["lengths"]
    out.append(charts.histogram("chart-lengths", "response length (words)",
                                [("kept", lengths["kept"]), ("dropped", lengths["dropped"])], x_title="words"))
    return [c for c in out if c]


def sample_charts(loop: dict[str, Any]) -> list[Markup]:
    return [charts.histogram(f"chart-samples-{s['round']}", f"round {s['round']} ({s['label']}): sample scores",
                             [("accepted", s["accepted"]), ("rejected", s["rejected"])], x_title="judge score")
            for s in loop["sample_scores"]]


def _asset(name: str) -> Markup:
    return Markup((ASSETS / name).read_text())


def render(data: dict[str, Any]) -> str:
    """The report's HTML for `data` (from `collect`)."""
    records, loop = data.get("records"), data.get("loop")
    page = {
        "rows": records["rows"] if records else [],
        "scoreNames": records["score_names"] if records else [],
        "reasons": list(records["reasons"]) if records else [],
    }
    return _environment().get_template("report.html.j2").render(
        d=data, records=records, lp=loop, page=page,
        charts_records=record_charts(records) if records else [],
        charts_rounds=round_charts(loop) if loop else [],
        charts_samples=sample_charts(loop) if loop else [],
        css=_asset("report.css"), js=_asset("report.js"),
    )
