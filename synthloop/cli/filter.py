"""`synthloop filter CONFIG|RUN`: dedup, diversity, decontamination, refusals, length, judge thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.common import SetOption, quiet_libraries
from synthloop.console.output import console

ResumeOption = Annotated[str, typer.Option("--resume", help="if-unchanged | always | never (see `generate`).")]


def filter_command(
    source: Annotated[Path, typer.Argument(help="A filter config (configs/filter/filter.yaml), or a run directory / "
                                                "dataset to filter with the default filters plus the options below.")],
    set_: SetOption = None,
    judge: Annotated[Path | None, typer.Option("--judge", help="A reward-model directory: drop records it scores "
                                                                "below --min-score.")] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", help="Score bound for --judge.")] = None,
    diversity: Annotated[int | None, typer.Option("--diversity", help="Keep this many records by k-center "
                                                                      "diversity (MiniLM embeddings).")] = None,
    decontaminate: Annotated[list[Path] | None, typer.Option(
        "--decontaminate", help="An evaluation set to decontaminate against (13-gram overlap); repeatable.")] = None,
    out: Annotated[str | None, typer.Option("--name", help="Output run name.")] = None,
    resume: ResumeOption = "if-unchanged",
) -> None:
    """Filter records into a new run directory; report.json counts what each filter dropped and why, and
    filtered.jsonl holds every dropped record with its reason.

    Examples:

      synthloop filter configs/filter/filter.yaml --set input.path=runs/self_instruct

      synthloop filter runs/self_instruct --judge runs/judge/model --min-score 0 --diversity 500
    """
    quiet_libraries()
    from synthloop.configs import ConfigError, dump_yaml, load_config, read_yaml
    from synthloop.judges.filters import FilterRunConfig, run_filters

    if resume not in ("if-unchanged", "always", "never"):
        raise ConfigError(f"--resume {resume!r}: expected if-unchanged, always or never")
    if source.suffix in (".yaml", ".yml"):
        data = read_yaml(source)
        name = source.stem
    else:
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such config, run directory or dataset")
        data = {"input": {"path": str(source)},
                "filters": [{"kind": "exact_dedup"}, {"kind": "near_dedup"}, {"kind": "refusal"}, {"kind": "length"}]}
        name = f"{source.name.split('.')[0]}-filtered"
    filters = data.setdefault("filters", [])
    for path in decontaminate or []:
        filters.append({"kind": "decontaminate", "eval_sets": [{"path": str(path)}]})
    if judge is not None:
        filters.append({"kind": "judge_threshold",
                        "judge": {"kind": "reward_model", "path": str(judge), "min_score": min_score}})
    elif min_score is not None:
        raise ConfigError("--min-score needs --judge")
    if diversity is not None:
        filters.append({"kind": "diversity", "k": diversity})
    cfg = load_config(FilterRunConfig, None, set_ or [], data=data)
    run_path = cfg.output_dir / (out or cfg.name or name)
    report = run_filters(cfg.input, cfg.filters, run_path, input_name=str(cfg.input.path), resume=resume,
                         config_yaml=dump_yaml(cfg), log=lambda m: console.print(m, highlight=False))
    table = Table(title=f"filter {run_path}", show_lines=False)
    for col in ("filter", "in", "out", "dropped", "top reasons"):
        table.add_column(col)
    for stage in report.filters:
        reasons = ", ".join(f"{k}: {v}" for k, v in list(stage["reasons"].items())[:3])
        table.add_row(stage["filter"], str(stage["in"]), str(stage["out"]), str(stage["dropped"]), reasons)
    console.print(table)
    console.print(f"kept {report.counts['out']} of {report.counts['in']} records in {report.seconds:.1f} s  ·  "
                  f"records: {run_path / 'records'}/  ·  dropped: {run_path / 'filtered.jsonl'}  ·  "
                  f"report: {run_path / 'report.json'}")
    from synthloop.cli.report import after_run
    after_run(run_path)
