"""`synthloop compile CONFIG`: optimize a program's prompts with DSPy against a judge, save it, report before/after."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.common import SetOption, load, quiet_libraries
from synthloop.cli.generate import ResumeOption
from synthloop.console.output import console, out


def compile_cmd(
    config: Annotated[Path, typer.Argument(
        help="A compile config, e.g. configs/compile/compile_task_generation.yaml.")],
    set_: SetOption = None,
    resume: ResumeOption = "if-unchanged",
) -> None:
    """Optimize a program's prompts with DSPy against a judge or verifier; report it on held-out inputs.

    The optimizer (BootstrapFewShot, random search over demo sets, or MIPROv2) learns from the program's first
    train_size inputs; the next held_out inputs are scored before and after. The result is saved as
    runs/<name>/program.json.

    Use the result in a generate config with `program.compiled: runs/<name>` (same program kind).

    Examples:

      synthloop compile configs/compile/compile_task_generation.yaml

      synthloop compile configs/compile/compile_task_generation.yaml --set optimizer.kind=mipro_v2 --set name=tg-mipro
    """
    from synthloop.configs import ConfigError

    if resume not in ("if-unchanged", "always", "never"):
        raise ConfigError(f"--resume {resume!r}: expected if-unchanged, always or never")
    quiet_libraries()
    from synthloop import engines, synth
    from synthloop.configs import dump_yaml
    from synthloop.judges.panel import Panel
    from synthloop.synth.compile import CompileConfig, compile_program

    cfg = load(CompileConfig, config, set_)
    if cfg.program.compiled is not None:
        raise ConfigError(f"{config}: program.compiled is set; compiling starts from the plain program")
    program = synth.build(cfg.program)
    started = time.time()
    with console.status(f"starting the {engines.resolve_kind(cfg.engine.kind)} engine..."):
        engine = engines.from_config(cfg.engine, log=console.print)
    console.print(f"engine ready in {time.time() - started:.0f} s")
    panel = Panel.from_specs([cfg.metric], where="metric", log=console.print)
    try:
        result = compile_program(
            program, engine=engine, judge=panel.members[0], out=cfg.output_dir / (cfg.name or config.stem),
            train_size=cfg.train_size, held_out=cfg.held_out, optimizer=cfg.optimizer, sampling=cfg.sampling,
            seed=cfg.seed, json_max_chars=cfg.engine.json_string_max_chars, resume=resume,
            config_yaml=dump_yaml(cfg), log=console.print,
        )
    finally:
        panel.close()
        engine.close()
    table = Table(title=f"{program.name}: {cfg.metric.kind} on {cfg.held_out} held-out inputs")
    for column in ("", "mean score", "accepted", "kept by filter", "why not"):
        table.add_column(column)
    for label, ev in (("before", result.before), ("after", result.after)):
        why = ", ".join(f"{k}: {v}" for k, v in list(ev.reasons.items())[:3])
        table.add_row(label, f"{ev.mean:.3f}", f"{ev.passed}/{ev.n}", f"{ev.kept}/{ev.n}", why)
    out.print(table)
    console.print(f"demos per predictor: {result.demos}  ·  {result.seconds:.0f} s  ·  "
                  f"report: {result.run}/report.json")
    console.print(f"use it: synthloop generate <config> --set program.compiled={result.run}")
    out.print(str(result.path), soft_wrap=True)
