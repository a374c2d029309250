"""`synthloop judge train|eval|score CONFIG`: train the reward model, measure a judge, score records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.common import SetOption, load, quiet_libraries
from synthloop.console.output import console

app = typer.Typer(help="Judges: train the MiniLM reward model, measure any judge against human preferences, "
                       "score records.", no_args_is_help=True)

ConfigArg = Annotated[Path, typer.Argument(help="A YAML config (see configs/judge/*.yaml).")]
ResumeOption = Annotated[str, typer.Option("--resume", help="if-unchanged | always | never (see `generate`).")]


def _resume(value: str) -> str:
    if value not in ("if-unchanged", "always", "never"):
        from synthloop.configs import ConfigError

        raise ConfigError(f"--resume {value!r}: expected if-unchanged, always or never")
    return value


@app.command("train")
def train(config: ConfigArg, set_: SetOption = None, resume: ResumeOption = "if-unchanged") -> None:
    """Train a judge: the reward model (all-MiniLM-L6-v2 + scalar head, Bradley-Terry; reports held-out
    accuracy) or, with `kind: generative`, a JudgeLM-style generative judge (TRL SFT on a teacher's verdicts).

    Writes runs/<name>/model/ (the artifact: for the reward model config.json, metrics.json, encoder/, head.pt;
    for a generative judge a checkpoint any engine loads plus judge.json) and metrics.json.

      synthloop judge train configs/judge/judge.yaml           # the default judge (runs/judge/model)
      synthloop judge train configs/judge/judge_hh.yaml --set train.epochs=1
      synthloop judge train configs/judge/judge_generative.yaml --set data.limit=300
    """
    quiet_libraries()
    from synthloop.configs import dump_yaml
    from synthloop.console.progress import make_progress
    from synthloop.judges.commands import JudgeTrainConfig, train_reward_model

    cfg = load(JudgeTrainConfig, config, set_)
    run_path = cfg.output_dir / (cfg.name or config.stem)
    if cfg.kind == "generative":
        _train_generative(cfg, run_path, _resume(resume), dump_yaml(cfg))
        return
    import time

    with make_progress() as bar:
        task = bar.add_task("training", total=None, detail="")
        last = [time.monotonic()]

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, total=total, completed=step, detail=f"loss {loss:.3f}")
            if bar.disable and (time.monotonic() - last[0] > 30 or step == total):  # no terminal: a line now and then
                console.print(f"step {step}/{total} · loss {loss:.3f}", highlight=False)
                last[0] = time.monotonic()

        metrics = train_reward_model(cfg, run_path, resume=_resume(resume), config_yaml=dump_yaml(cfg),
                                     log=lambda m: console.print(m, highlight=False), progress=progress)
    table = Table(show_header=False, box=None)
    sources = ", ".join(f"{k} {v}" for k, v in metrics["train_sources"].items())
    table.add_row("pairs", f"{metrics['train_pairs']} train ({sources})")
    table.add_row("loss", f"{metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f} ({metrics['steps']} steps, "
                          f"{metrics['train_seconds']:.0f} s)")
    for name, row in metrics.get("sets", {}).items():
        table.add_row(f"held out: {name}", f"{row['accuracy']:.3f} on {row['pairs']} pairs  (length: longer wins "
                                           f"{row['length_longer_wins']:.3f}, shorter wins "
                                           f"{row['length_shorter_wins']:.3f}; chance 0.5; judge picks the longer "
                                           f"{row['picks_longer']:.3f})")
    table.add_row("model", f"{run_path / 'model'}/")
    console.print(table)
    console.print(f"use it: judge: {{kind: reward_model, path: {run_path / 'model'}}}  (filters, judge score, loops)")


def _train_generative(cfg, run_path: Path, resume: str, config_yaml: str) -> None:
    from synthloop.judges.generative_train import train_generative_judge

    metrics = train_generative_judge(cfg, run_path, resume=resume, config_yaml=config_yaml,
                                     log=lambda m: console.print(m, highlight=False))
    table = Table(show_header=False, box=None)
    table.add_row("teacher", str(metrics["teacher"].get("judge")))
    table.add_row("data", f"{metrics['train_pairs']} pairs -> {metrics['sft_records']} SFT records")
    if metrics["loss_first"] is not None:
        table.add_row("loss", f"{metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f} ({metrics['steps']} steps, "
                              f"{metrics['train_seconds']:.0f} s)")
    table.add_row("model", f"{run_path / 'model'}/")
    console.print(table)
    console.print(f"use it: judge: {{kind: generative, path: {run_path / 'model'}}}  (judge eval/score, filters, "
                  "loops)")


@app.command("eval")
def evaluate(config: ConfigArg, set_: SetOption = None) -> None:
    """Pairwise accuracy of a judge against preference labels on several sets in one table: the held-out parts
    of the training data (hh-rlhf's, and each dataset's with held_out_fraction), `sets`, or one `pairs` file;
    with the length baselines, chance, and the judge's length bias (how often it picks the longer answer vs
    how often the labels did). For an LLM judge with swap, the swap-consistency rate too.

      synthloop judge eval configs/judge/judge_eval.yaml --set judge.path=runs/judge/model
      synthloop judge eval configs/judge/judge_eval.yaml --set pairs.path=prefs.jsonl
      synthloop judge eval configs/judge/judge_eval_llm.yaml --set data.eval_limit=100
    """
    quiet_libraries()
    from synthloop.judges.commands import JudgeEvalConfig, evaluate_judge

    cfg = load(JudgeEvalConfig, config, set_)
    run_path = cfg.output_dir / (cfg.name or config.stem)
    with console.status(f"judging with {cfg.judge.kind}..."):
        out = evaluate_judge(cfg, run_path, log=lambda m: console.print(m, highlight=False))
    table = Table(title=f"{cfg.judge.kind} judge vs preference labels (accuracy; ties count half)")
    for column in ("set", "pairs", "judge", "longer wins", "shorter wins", "chance", "judge picks longer",
                   "labels: longer"):
        table.add_column(column, justify="left" if column == "set" else "right", no_wrap=column == "set")
    extra = [k for k in ("accuracy_first_order", "accuracy_swap", "swap_consistency") if any(
        k in row for row in out["sets"].values())]
    for key in extra:
        table.add_column(key.replace("_", " "), justify="right")
    for name, row in out["sets"].items():
        table.add_row(name, str(row["pairs"]), f"{row['accuracy']:.3f}", f"{row['length_longer_wins']:.3f}",
                      f"{row['length_shorter_wins']:.3f}", "0.500", f"{row['picks_longer']:.3f}",
                      f"{row['length_longer_wins']:.3f}", *(f"{row[k]:.3f}" if k in row else "" for k in extra))
    from rich.console import Console

    Console(stderr=True, width=max(console.width, 132)).print(table)  # never squeeze set names into "hh_rl…"
    console.print(f"{out['seconds']:.1f} s · report: {run_path / 'eval.json'}", highlight=False)


@app.command("score")
def score(config: ConfigArg, set_: SetOption = None, resume: ResumeOption = "if-unchanged") -> None:
    """Score every record of a run or dataset with a judge; scores land in each record's `scores`.

      synthloop judge score configs/judge/judge_score.yaml --set input.path=runs/self_instruct
    """
    quiet_libraries()
    from synthloop.configs import dump_yaml
    from synthloop.judges.commands import JudgeScoreConfig
    from synthloop.judges.filters import JudgeThresholdConfig, run_filters

    cfg = load(JudgeScoreConfig, config, set_)
    run_path = cfg.output_dir / (cfg.name or config.stem)
    with console.status(f"scoring with {cfg.judge.kind}..."):
        report = run_filters(cfg.input, [JudgeThresholdConfig(judge=cfg.judge, drop_rejected=False)], run_path,
                             input_name=str(cfg.input.path), resume=_resume(resume), config_yaml=dump_yaml(cfg),
                             log=lambda m: console.print(m, highlight=False))
    stage = report.filters[0]
    console.print(f"scored {stage['out']} of {stage['in']} records"
                  + (f" (mean {stage['score_mean']:.3f}, median {stage['score_median']:.3f})" if "score_mean" in stage
                     else "") + (f"; {stage['dropped']} could not be scored (filtered.jsonl)" if stage["dropped"]
                                 else ""))
    console.print(f"records: {run_path / 'records'}/   report: {run_path / 'report.json'}")


def _print_json(data) -> None:
    console.print_json(json.dumps(data, default=str))
