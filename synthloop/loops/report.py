"""A loop's results: the summary (summary.json), the per-round table, and the plot (rounds.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthloop.loops.state import LoopState

#: columns of the round table: (metric, header, format)
COLUMNS = [
    ("label", "round", "{}"),
    ("eval_accuracy", "held-out acc", "{:.1%}"),
    ("eval_accuracy_ci95", "95% CI", "{0[0]:.0%}-{0[1]:.0%}"),  # the Wilson interval of the held-out accuracy
    ("eval_ifeval_prompt_strict", "IFEval strict", "{:.1%}"),  # held-out IFEval rows (synthloop.loops.heldout)
    ("eval_ifeval_prompt_loose", "IFEval loose", "{:.1%}"),
    ("eval_ifeval_instruction_strict", "IFEval instr.", "{:.1%}"),
    ("eval_judge.reward_model", "RM score", "{:.2f}"),
    ("eval_tokens", "eval len", "{:.0f}"),
    ("eval_sl", "S_l", "{:.1f}"),                        # self_lengthen: LongWriter's length score (0-100)
    ("eval_words", "eval words", "{:.0f}"),
    ("eval_quality", "quality", "{:.2f}"),
    ("draft_words", "draft words", "{:.0f}"),
    ("extended_words", "extended words", "{:.0f}"),
    ("extensions_kept", "kept ext.", "{}"),
    ("tasks_written", "tasks written", "{}"),               # a program task source (synthloop.loops.program_tasks)
    ("tasks_dropped_held_out", "copies dropped", "{}"),
    ("sample_accuracy", "sample acc", "{:.1%}"),
    ("sample_pass_at_n", "pass@n", "{:.1%}"),
    ("sample_tokens", "sample len", "{:.0f}"),
    ("sft_data", "sft rows", "{}"),
    ("dpo_pairs", "pairs", "{}"),
    ("sft_loss", "sft loss", "{:.3f}"),
    ("dpo_loss", "dpo loss", "{:.3f}"),
    ("redi_pairs", "redi pairs", "{}"),
    ("redi_loss", "redi loss", "{:.3f}"),
    ("topr_negatives", "topr neg", "{}"),
    ("topr_loss", "topr loss", "{:.3f}"),
    ("grpo_reward_first", "grpo reward 1st", "{:.3f}"),
    ("grpo_reward_last", "grpo reward last", "{:.3f}"),
    ("eval_ppl", "held-out ppl", "{:.3f}"),
    ("eval_ppl_given_context", "ppl | context", "{:.3f}"),
    ("control_eval_ppl", "control ppl", "{:.3f}"),
    ("control_eval_ppl_given_context", "control ppl | ctx", "{:.3f}"),
    ("estep_gain_per_token", "thought gain/tok", "{:.3f}"),
    ("estep_ess", "ESS", "{:.2f}"),
    ("tt_uncertain", "unsure", "{}"),                      # test-time recipes (tt_si, tt_d)
    ("base_acc_uncertain", "unsure: base", "{:.1%}"),
    ("majority_acc_uncertain", "unsure: maj@n", "{:.1%}"),
    ("tt_acc_uncertain", "unsure: adapted", "{:.1%}"),
    ("tt_sft_rows", "tt rows", "{}"),
    ("seconds", "seconds", "{:.0f}"),
    ("peak_rss_gib", "peak GiB", "{:.2f}"),
    ("rss_main_gib", "end GiB", "{:.2f}"),
]


def accuracy_interval(correct: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """The Wilson score interval [low, high] of an accuracy of `correct` out of `n` (None for n = 0): where the
    accuracy on every such task lies, given this sample of `n` tasks (scipy's binomtest)."""
    if n <= 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def summarize(run_path: Path, state: LoopState, config=None, *, status: str = "completed",
              stop_reason: str | None = None) -> dict[str, Any]:
    rounds = [r.metrics for r in state.done_rounds()]
    metric = config.stop.metric if config is not None else "eval_accuracy"
    values = [(m["round"], m.get(metric)) for m in rounds if m.get(metric) is not None]
    best = max(values, key=lambda rv: (rv[1], -rv[0])) if values else (None, None)
    peaks = [m["peak_rss_gib"] for m in rounds if m.get("peak_rss_gib") is not None]
    return {
        "run": str(run_path),
        "status": status,
        "stop_reason": stop_reason,
        "metric": metric,
        "baseline_accuracy": rounds[0].get("eval_accuracy") if rounds else None,
        "baseline_accuracy_ci95": rounds[0].get("eval_accuracy_ci95") if rounds else None,
        "final_accuracy": rounds[-1].get("eval_accuracy") if rounds else None,
        "final_accuracy_ci95": rounds[-1].get("eval_accuracy_ci95") if rounds else None,
        "best_round": best[0],
        "best_value": best[1],
        "rounds_done": len(rounds) - 1 if rounds else 0,
        "seconds_per_round": [m.get("seconds") for m in rounds],
        "peak_rss_gib": max(peaks) if peaks else None,
        "final_checkpoint": state.checkpoints.get("policy"),
        "rounds": rounds,
    }


def table_columns(rounds: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The COLUMNS some round has a value for, with per-skill held-out accuracy (recipes that label tasks with
    skills, e.g. stat) right after the overall one."""
    columns = [c for c in COLUMNS if any(m.get(c[0]) is not None for m in rounds)]
    skills = sorted({k for m in rounds for k in m if k.startswith("eval_acc_")})
    at = next((i + 1 for i, c in enumerate(columns) if c[0] == "eval_accuracy"), len(columns))
    columns[at:at] = [(k, f"acc {k[len('eval_acc_'):]}", "{:.1%}") for k in skills]
    return columns


#: columns a narrow terminal drops first (they stay in summary.json and the HTML report), in this order
SPARE = ["rss_main_gib", "peak_rss_gib", "sample_tokens", "eval_tokens", "sample_pass_at_n", "seconds"]


def round_table(state: LoopState, title: str = "", width: int | None = None):
    """The rounds as a rich table; with `width` (the terminal's), the SPARE columns are dropped until it fits."""
    from rich.table import Table

    rounds = [r.metrics for r in state.done_rounds()]
    columns = table_columns(rounds)
    rows = [[str(m["round"])] + ["" if m.get(key) is None else fmt.format(m[key]) for key, _, fmt in columns]
            for m in rounds]
    spare = [key for key in SPARE if key in [c[0] for c in columns]]
    while width is not None and spare and _natural_width(columns, rows) > width:
        drop = [c[0] for c in columns].index(spare.pop(0)) + 1
        columns.pop(drop - 1)
        rows = [row[:drop] + row[drop + 1:] for row in rows]
    table = Table(title=title or None)
    table.add_column("#", justify="right")
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    running = [r for r in state.rounds if r.status != "done"]
    for r in running:
        table.add_row(str(r.round), r.label or "", f"running ({', '.join(r.stages) or 'started'})",
                      *[""] * (len(columns) - 2))
    return table


def _natural_width(columns: list[tuple[str, str, str]], rows: list[list[str]]) -> int:
    """Characters the table takes unsqueezed: each column's widest cell or header, plus borders and padding."""
    headers = ["#"] + [header for _, header, _ in columns]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    return sum(widths) + 3 * len(widths) + 1


def plot_rounds(state: LoopState, out: Path, *, metric: str = "eval_accuracy") -> Path:
    """rounds.png: held-out metric, sample accuracy and pass@n per round; answer lengths; seconds per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.metrics for r in state.done_rounds()]
    xs = [m["round"] for m in rounds]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    for key, label in ((metric, f"held-out {metric}"), (f"control_{metric}", f"control arm: {metric}"),
                       ("sample_accuracy", "sample accuracy"), ("sample_pass_at_n", "pass@n (samples)")):
        pts = [(x, m[key]) for x, m in zip(xs, rounds, strict=True) if m.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.set_xlabel("round (0 = baseline)")
    ax.set_title("accuracy")
    ax.set_xticks(xs)
    if ax.lines:  # a recipe may have none of these metrics
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for key, label in (("eval_tokens", "held-out answers"), ("sample_tokens", "samples")):
        pts = [(x, m[key]) for x, m in zip(xs, rounds, strict=True) if m.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.set_title("mean answer length (tokens)")
    ax.set_xlabel("round")
    ax.set_xticks(xs)
    if ax.lines:  # a recipe may have none of these metrics
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[2]
    stages = list(dict.fromkeys(k[len("seconds_"):] for m in rounds for k in m if k.startswith("seconds_")))
    bottom = [0.0] * len(rounds)
    for stage in stages:
        values = [float(m.get(f"seconds_{stage}") or 0) for m in rounds]
        ax.bar(xs, values, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_title("seconds per stage")
    ax.set_xlabel("round")
    ax.set_xticks(xs)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
