"""Run a synthesis program over its inputs into a run directory: concurrent, streamed, resumable.

Items run as asyncio tasks, at most `concurrency` at once; each task is one `program.arun(inputs, call)`
(`synth.base.SynthProgram`): a DSPy program's model calls go through the bridge into one engine, a chat
program sends its request itself, and everything in flight is batched there. Inputs are pulled lazily
and records are written as they finish, so memory does not grow with the dataset. How failures, retries,
resume and saturation work: `synth.runner`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dspy

from synthloop.engines.base import Engine
from synthloop.engines.types import Sampling
from synthloop.runs.fingerprint import engine_identity
from synthloop.runs.run_dir import ResumePolicy, RunDir
from synthloop.synth.attempts import failure_reason
from synthloop.synth.base import SynthProgram
from synthloop.synth.remote import RemoteItems
from synthloop.synth.runner import Runner, RunSummary, one_line_errors, run_on_engine

#: items in flight for an engine without a preference
_DEFAULT_CONCURRENCY = 64


def run_identity(program: SynthProgram, engine: dict[str, Any], sampling: Sampling, seed: int, *,
                 caller_inputs: bool) -> dict[str, Any]:
    """What determines a run's outputs, by content (input files, prompts, the model's weights: see
    `runs.fingerprint`); a rerun with a different identity does not reuse the directory."""
    return {"program": program.describe(), "engine": engine_identity(engine),
            "sampling": sampling.model_dump(mode="json"),
            "seed": seed, "inputs": "caller" if caller_inputs else "program"}


def check_inputs(program: SynthProgram) -> None:
    """Before an engine starts: the program has at least one input and can use it (e.g. a prompt template's
    columns exist); else a one-line `ConfigError` naming the input. Programs fed by their caller pass."""
    from synthloop.configs import ConfigError

    try:
        first = next(one_line_errors(program.inputs(), program.name), None)
    except NotImplementedError:
        return
    if first is None:
        source = getattr(getattr(program.config, "inputs", None), "path", None) or f"program ({program.name})"
        raise ConfigError(f"{source}: no usable input rows (an empty file, blank lines only, or every row skipped); "
                          "nothing to generate from")
    program.check_input(first)


def generate(
    program: SynthProgram,
    *,
    engine: Engine | None = None,
    run: str | Path,
    inputs: Iterable[dict[str, Any]] | None = None,
    num_records: int | None = None,
    sampling: Sampling | None = None,
    seed: int = 0,
    concurrency: int | None = None,
    max_attempts: int = 3,
    max_items: int | None = None,
    resume: ResumePolicy = "if-unchanged",
    config_yaml: str | None = None,
    json_max_chars: int | None = None,
    progress: bool = True,
    adapter: dspy.Adapter | None = None,
    remote: RemoteItems | None = None,
) -> RunSummary:
    """Run `program` into the run directory `run`; returns counts (`synth.runner.RunSummary`). See the module docstring.

    `adapter`: the DSPy adapter (default: `SchemaJSONAdapter` on engines that enforce JSON schemas, else
    DSPy's ChatAdapter). `concurrency`: items in flight (default: `engine.preferred_in_flight`, else 64).
    `remote` instead of `engine`: the items run on replicas elsewhere (e.g. `synth.ray_executor.RayReplicas`, each
    with its own engine); this process keeps the run directory and writes what they return (`synth.remote`)."""
    if (engine is None) == (remote is None):
        raise TypeError("generate: pass either engine or remote")
    sampling = sampling or Sampling()
    described = engine.describe() if engine is not None else remote.describe_engine()
    identity = run_identity(program, described, sampling, seed, caller_inputs=inputs is not None)
    rundir = RunDir.open(run, identity=identity, kind="generate", resume=resume, config_yaml=config_yaml)
    try:
        if remote is not None:
            runner = Runner(program, None, rundir, inputs, num_records, sampling, seed, 0, max_attempts, max_items,
                             json_max_chars, progress, adapter, check_inputs=resume != "always")
            return runner.run_remote(remote)
        concurrency = concurrency or engine.preferred_in_flight or _DEFAULT_CONCURRENCY
        runner = Runner(program, engine, rundir, inputs, num_records, sampling, seed, concurrency, max_attempts,
                         max_items, json_max_chars, progress, adapter, check_inputs=resume != "always")
        return run_on_engine(runner, engine)
    except BaseException as exc:  # whatever stopped the run before its own bookkeeping could: the manifest says so
        if rundir.exists() and rundir.manifest().get("status") == "running":
            interrupted = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
            rundir.update_manifest(status="interrupted" if interrupted else "failed",
                                   **({} if interrupted else {"error": failure_reason(exc)}))
        raise
    finally:
        rundir.close()


