"""The config of `synthloop generate`: which program, on which engine, how many records, where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

from pydantic import Field

from synthloop.configs import RUNTIME, Config
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import sampling_config
from synthloop.synth import PROGRAMS
from synthloop.synth.executor import ExecutorConfig, LocalExecutor

_program_configs = tuple(p.config_class for p in PROGRAMS.values())
ProgramConfig = (
    Annotated[Union[_program_configs], Field(discriminator="kind")]  # noqa: UP007 - built at runtime
    if len(_program_configs) > 1
    else _program_configs[0]
)


class GenerateConfig(Config):
    name: str | None = Field(None, description="Run name (its directory under output_dir); default: the config "
                             "file's name.", json_schema_extra=RUNTIME)
    output_dir: Path = Field(Path("runs"), description="Where run directories go.", json_schema_extra=RUNTIME)
    program: ProgramConfig = Field(description="The synthesis program and its knobs; `kind` picks it.")
    engine: EngineConfig = EngineConfig()
    executor: ExecutorConfig = Field(
        LocalExecutor(), description="Where the items run: local (this process, one engine) or ray (replicas of the "
        "engine on a Ray cluster; docs/scale.md). Does not change the records.", json_schema_extra=RUNTIME)
    sampling: sampling_config("How every model call samples (a call may set its own values, e.g. a judge's greedy "
                              "verdicts).", temperature=0.7, max_tokens=384)
    num_records: int | None = Field(None, ge=1, description="Records to keep; default: one per input.",
                                    json_schema_extra=RUNTIME)
    seed: int = Field(0, description="Run seed: every model call's seed derives from it, the item and the attempt.")
    concurrency: int | None = Field(
        None, ge=1, description="Items in flight at once (their model calls are batched). Default: what keeps the "
        "engine busy (vllm: max_num_seqs + 25%; transformers: 2 x batch_size; openai: 2 x max_concurrency).",
        json_schema_extra=RUNTIME)
    max_attempts: int = Field(3, ge=1, description="Tries per item (fresh samples) before it is recorded as failed.",
                              json_schema_extra=RUNTIME)
    show_examples: int = Field(3, ge=0, description="Records printed when the run ends.", json_schema_extra=RUNTIME)
