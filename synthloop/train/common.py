"""What the SFT, DPO and GRPO steps share: device and precision defaults, loading the policy, LoRA, the TRL
arguments, the step's data, and the flow (`run_training`); checkpoints, the step log and the final model are in
checkpoints.py.

A step writes into its output directory:

    out/
      model/            the trained checkpoint (LoRA merged unless lora.merge is false) + tokenizer
      result.json       what happened (steps, losses, seconds, peak memory); written last: the "done" marker
      log.jsonl         one line per logged step (loss, learning rate, rewards, ...)
      trainer/          TRL/transformers checkpoints while training (removed once model/ is written)

Calling a step again on a finished directory returns the saved result without training; on a
directory whose step was killed, it resumes from the last complete trainer checkpoint (a checkpoint
is complete once its trainer_state.json, written last, exists).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from synthloop.memory import PeakRSS, release_memory
from synthloop.runs.jsonl import atomic_write, read_jsonl
from synthloop.train import launch
from synthloop.train.checkpoints import (
    checkpoint_callback,
    checkpoint_step,
    last_complete_checkpoint,
    save_final,
    truncate_log,
)
from synthloop.train.config import LoraSettings, Precision, TrainCommon

DataLike = Any  # a datasets.Dataset, a list of dicts, or a path to a .jsonl/.json/.parquet file


class TrainResult(BaseModel):
    method: str
    base_model: str
    checkpoint: str = Field(description="The trained model directory (loadable by every engine unless an adapter).")
    adapter_only: bool = False
    examples: int
    steps: int
    seconds: float
    resumed_from_step: int | None = None
    train_loss: float | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, description="Last logged value of every metric.")
    peak_rss_gib: float | None = None
    device: str = "cpu"
    precision: str = "fp32"


# -- device and precision ---------------------------------------------------------------------------
def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_precision(precision: Precision) -> str:
    if precision != "auto":
        return precision
    if not on_gpu():
        return "fp32"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def precision_args(precision: str) -> dict[str, Any]:
    """TRL configs default to bf16, which fails at once on CPU; these are the arguments that work."""
    args: dict[str, Any] = {"bf16": precision == "bf16", "fp16": precision == "fp16"}
    if not on_gpu():
        args.update(use_cpu=True, dataloader_pin_memory=False)
    return args


def load_policy(model_path: str | Path, precision: str):
    """The model to train and its tokenizer. bf16 training loads bf16 weights; fp16 keeps fp32 weights under
    autocast (fp16 master weights break the gradient scaler)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype)
    if on_gpu() and launch.world_size() == 1:  # several processes: the trainer places (or shards) it per process
        model = model.to("cuda")
    return model, tokenizer


def peft_config(lora: LoraSettings | None):
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                      task_type="CAUSAL_LM")


def trl_args(settings: TrainCommon, out: Path, precision: str) -> dict[str, Any]:
    """The TrainingArguments every step shares."""
    args: dict[str, Any] = dict(
        output_dir=str(out / "trainer"),
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps if settings.max_steps is not None else -1,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
        lr_scheduler_type=settings.lr_scheduler,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        gradient_checkpointing=settings.gradient_checkpointing,
        seed=settings.seed,
        data_seed=settings.seed,
        logging_steps=settings.logging_steps,
        save_strategy="no",  # checkpoints are time-based (CheckpointAndLog), see checkpoint_every_minutes
        save_total_limit=1,
        report_to=[r for r in settings.report_to if r != "none"] or "none",
        disable_tqdm=True,  # our own progress bar
        # several processes (launcher: accelerate): every parameter of a causal LM gets a gradient, so DDP need not
        # search for unused ones (an extra pass over the graph every step)
        ddp_find_unused_parameters=False,
        **precision_args(precision),
    )
    args.update(settings.trl)
    return args


# -- data -------------------------------------------------------------------------------------------
def as_dataset(data: DataLike):
    import datasets

    if isinstance(data, datasets.Dataset):
        return data
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such training data file")
        fmt = "parquet" if path.suffix == ".parquet" else "json"
        return datasets.load_dataset(fmt, data_files=str(path), split="train")
    rows = list(data)
    return datasets.Dataset.from_list(rows)


# -- the shared flow --------------------------------------------------------------------------------
def finished(out: str | Path) -> TrainResult | None:
    """The result of a finished step in `out`, or None."""
    out = Path(out)
    result, model = out / "result.json", out / "model"
    if result.is_file() and model.is_dir():
        return TrainResult.model_validate_json(result.read_text())
    return None


def training_data(method: str, data: DataLike, columns: Iterable[str] = (), what: str = "examples"):
    """The step's data as a `datasets.Dataset`; empty data or missing columns are one-line `ValueError`s."""
    dataset = as_dataset(data)
    if len(dataset) == 0:
        raise ValueError(f"{method}: no {what} to train on")
    missing = set(columns) - set(dataset.column_names)
    if missing:
        raise ValueError(f"{method}: the {what} need columns {', '.join(columns)} (missing: "
                         f"{', '.join(sorted(missing))})")
    return dataset


def run_training(
    method: str,
    *,
    model: str | Path,
    data: DataLike,
    out: str | Path,
    settings: TrainCommon,
    build_trainer: Callable[..., Any],
    columns: Iterable[str] = (),
    what: str = "examples",
    prepare: Callable[[Any], Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    relaunch: dict[str, Any] | None = None,
) -> TrainResult:
    """The flow every step shares. A finished `out` returns its saved result at once. Otherwise: load `data` (checked
    for `columns`; `prepare` may reshape it), load the policy (`model`: a registered name, a checkpoint directory or
    a hub id), build the TRL trainer with `build_trainer(policy, tokenizer, args, peft_config, callbacks, dataset)`,
    train (resuming from the last complete checkpoint), save the final checkpoint and the result.

    With `settings.launcher.kind: accelerate` the step runs in several processes instead (`train.launch`), each
    calling the step again with its arguments plus `relaunch` (what the step needs beyond model, data and
    settings); process 0 writes the outputs."""
    from synthloop.engines import registry

    out = Path(out)
    done = finished(out)
    if done is not None:
        return done
    if launch.wants_launch(settings):
        training_data(method, data, columns, what)  # empty data or missing columns: the one-line error, here
        launch.launch_step(method, model=model, data=data, out=out, settings=settings, extra=relaunch, log=log)
        return finished(out)
    main = launch.is_main_process()
    dataset = training_data(method, data, columns, what)
    examples = len(dataset)
    if prepare is not None:
        dataset = prepare(dataset)
    model = registry.resolve(str(model))
    out.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(settings.precision)
    resume = last_complete_checkpoint(out / "trainer", clean=main)
    if resume is not None and main:
        truncate_log(out / "log.jsonl", checkpoint_step(resume))
        if log:
            log(f"{method}: resuming from {resume.name}")
    elif main and (out / "log.jsonl").exists():
        (out / "log.jsonl").unlink()  # a kill before the first checkpoint: the step starts over
    started = time.time()
    meter = PeakRSS().start()
    policy, tokenizer = load_policy(model, precision)
    callback = checkpoint_callback(out / "log.jsonl", settings.checkpoint_every_minutes * 60, method, progress and main)
    with _env("TENSORBOARD_LOGGING_DIR", str(out / "tensorboard")):  # read when the trainer builds its callback
        trainer = build_trainer(policy, tokenizer, trl_args(settings, out, precision), peft_config(settings.lora),
                                [callback], dataset)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict; ours writes log.jsonl and a bar
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        steps = trainer.state.global_step
        checkpoint = save_final(trainer, tokenizer, out, settings.lora, main)
    finally:
        callback.close()
    if not main:  # process 0 writes the result; the others are done
        trainer.accelerator.wait_for_everyone()
        del trainer, policy, output
        release_memory()
        return TrainResult(method=method, base_model=str(model), checkpoint=str(checkpoint), examples=examples,
                           steps=steps, seconds=round(time.time() - started, 2))
    rows = list(read_jsonl(out / "log.jsonl"))
    losses = [r["loss"] for r in rows if "loss" in r]
    last: dict[str, Any] = {}
    for row in rows:
        last.update({k: v for k, v in row.items() if k != "step"})
    result = TrainResult(
        method=method, base_model=str(model), checkpoint=str(checkpoint),
        adapter_only=settings.lora is not None and not settings.lora.merge, examples=examples, steps=steps,
        seconds=round(time.time() - started, 2), resumed_from_step=checkpoint_step(resume) if resume else None,
        train_loss=getattr(output, "training_loss", None), first_loss=losses[0] if losses else None,
        last_loss=losses[-1] if losses else None, metrics=last, peak_rss_gib=round(meter.peak_gib, 3),
        device="cuda" if on_gpu() else "cpu", precision=precision,
    )
    meter.stop()
    atomic_write(out / "result.json", result.model_dump_json(indent=2))
    shutil.rmtree(out / "trainer", ignore_errors=True)  # optimizer states are large; the step is done
    if launch.world_size() > 1:
        trainer.accelerator.wait_for_everyone()
    del trainer, policy, output
    release_memory()
    return result


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    """`key=value` in the environment for the duration (transformers' TensorBoard callback is configured so)."""
    before = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
