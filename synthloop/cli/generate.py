"""`synthloop generate CONFIG`: run a synthesis program into a run directory."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from synthloop.cli.common import SetOption, exit_for, load, quiet_libraries
from synthloop.console.output import console

ResumeOption = Annotated[
    str,
    typer.Option(
        "--resume",
        help="if-unchanged: continue the run if its config is unchanged, else refuse; "
        "always: continue it even if the config changed; never: start a new run beside it.",
    ),
]


def generate(
    config: Annotated[Path, typer.Argument(help="A generation config, e.g. configs/generate/self_instruct.yaml.")],
    set_: SetOption = None,
    resume: ResumeOption = "if-unchanged",
) -> None:
    """Run a synthesis program over its inputs; records land in runs/<name>/ as they finish.

    Kill it at any time (Ctrl-C, SIGTERM, even SIGKILL) and rerun the same command: finished items are
    skipped and finished model calls come from the run's cache.

    Examples:

      synthloop generate configs/generate/self_instruct.yaml --set num_records=200

      synthloop generate configs/generate/self_instruct.yaml --set engine.kind=transformers --set engine.model=./my-ckpt
    """
    if resume not in ("if-unchanged", "always", "never"):
        from synthloop.configs import ConfigError

        raise ConfigError(f"--resume {resume!r}: expected if-unchanged, always or never")
    quiet_libraries()
    from synthloop import engines, synth
    from synthloop.configs import dump_yaml
    from synthloop.console.output import library_output
    from synthloop.runs.run_dir import RunDir
    from synthloop.synth.generate import check_inputs, run_identity
    from synthloop.synth.generate import generate as run_generate
    from synthloop.synth.generate_config import GenerateConfig
    from synthloop.synth.ray_executor import replicas_for

    cfg = load(GenerateConfig, config, set_)
    program = synth.build(cfg.program)
    check_inputs(program)  # no rows, or rows the program cannot use: refused before anything starts
    sampling = cfg.sampling
    identity = run_identity(program, engines.describe_config(cfg.engine), sampling, cfg.seed, caller_inputs=False)
    target = RunDir.target(cfg.output_dir / (cfg.name or config.stem), identity=identity, resume=resume)  # fail fast
    if target.exists():  # one writer: a second process exits here, at once, before it starts an engine (a new run
        target.lock()  # is locked when it is created: nothing is written for a command that fails before that)
    verb = "resuming" if target.exists() else "starting"
    console.print(
        f"[bold]{verb}[/] run {target.path}  ·  program {program.name}  ·  "
        f"engine {engines.resolve_kind(cfg.engine.kind)} / {cfg.engine.model}"
    )
    started = time.time()
    remote = replicas_for(cfg.executor, cfg.engine)
    with library_output(target.log_path) as log:
        if log is not None:
            console.print(f"[dim]engine and library output: {log}[/]", highlight=False)
        if remote is not None:
            engine = None
            console.print(f"items run on {cfg.executor.replicas} replicas on the Ray cluster "
                          f"({cfg.executor.address}); Ray's log: {target.path / 'ray.log'}")
        else:
            with console.status(f"starting the {engines.resolve_kind(cfg.engine.kind)} engine..."):
                engine = engines.from_config(cfg.engine, log=console.print)
            console.print(f"engine ready in {time.time() - started:.0f} s")
        try:
            summary = run_generate(
                program,
                engine=engine,
                remote=remote,
                run=target.path,
                num_records=cfg.num_records,
                sampling=sampling,
                seed=cfg.seed,
                concurrency=cfg.concurrency,
                max_attempts=cfg.max_attempts,
                resume=resume,
                config_yaml=dump_yaml(cfg),
                json_max_chars=cfg.engine.json_string_max_chars,
            )
        finally:
            if engine is not None:
                engine.close()
            target.close()
    _report(summary, cfg.show_examples, time.time() - started)
    from synthloop.cli.report import after_run
    after_run(summary.path)
    exit_for(summary.status, summary.run.path, summary.error)


def _report(summary, show: int, wall: float) -> None:
    run = summary.run
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("status", summary.status)
    table.add_row(
        "records kept",
        f"{summary.kept}" + (f" (of which {summary.skipped} from earlier sessions)" if summary.skipped else ""),
    )
    reasons = Counter(_reason_kind(r["reason"]) for r in run.iter_filtered())
    table.add_row(
        "filtered out",
        f"{summary.filtered}" + (f"  ({', '.join(f'{k}: {v}' for k, v in reasons.most_common(4))})" if reasons else ""),
    )
    failed = ", ".join(f"{k}: {v}" for k, v in summary.failure_reasons.items())
    table.add_row("failed", f"{summary.failed}" + (f"  ({failed}; see errors.jsonl)" if failed else ""))
    rate = summary.output_tokens / summary.seconds if summary.seconds else 0
    table.add_row(
        "generation",
        f"{summary.seconds:.0f} s: {summary.output_tokens} tokens generated ({rate:.0f} tok/s) "
        f"from {summary.prompt_tokens} prompt tokens; {summary.cache_hits} cached calls",
    )
    table.add_row("wall time", f"{wall:.0f} s (engine start included)")
    table.add_row("records", f"{run.records_dir}/")
    console.print(Panel(table, title=f"run {run.path}", expand=False))
    for record in _first(run.iter_records(), show):
        msgs = record.get("messages") or []
        body = "\n".join(f"[bold]{m['role']}:[/] {_clip(m['content'])}" for m in msgs) or _clip(str(record))
        console.print(Panel(body, title=f"record {record['id']}", expand=False), highlight=False)
    if summary.kept:
        console.print(
            f"export: synthloop runs export {run.path} --format parquet   ·   details: synthloop runs show {run.path}"
        )


def _reason_kind(reason: str) -> str:
    return reason.split("(")[0].split(":")[0].strip()


def _clip(text: str, n: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def _first(rows, n):
    for i, row in enumerate(rows):
        if i >= n:
            return
        yield row
