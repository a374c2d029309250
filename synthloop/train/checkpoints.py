"""A training step's checkpoints: time-based resumable trainer checkpoints (complete once trainer_state.json,
written last, exists), the per-step log (log.jsonl, with a progress bar), and the final model written atomically
(by process 0, or gathered by every process under ZeRO-3 / FSDP)."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

from synthloop.runs.jsonl import AppendLog, atomic_write, read_jsonl
from synthloop.train import launch
from synthloop.train.config import LoraSettings


def last_complete_checkpoint(trainer_dir: Path, clean: bool = True) -> Path | None:
    """The newest checkpoint whose trainer_state.json exists; incomplete ones (a kill while saving) are removed
    (with `clean`: by one process only when several train together)."""
    if not trainer_dir.is_dir():
        return None
    found = []
    for path in trainer_dir.glob("checkpoint-*"):
        try:
            found.append((int(path.name.split("-")[1]), path))
        except (IndexError, ValueError):
            continue
    best = None
    for _, path in sorted(found, reverse=True):
        if best is None and (path / "trainer_state.json").is_file():
            best = path
        elif best is None and clean:
            shutil.rmtree(path, ignore_errors=True)
    return best


def checkpoint_step(path: Path) -> int:
    """The global step a `checkpoint-N` directory holds."""
    return int(path.name.split("-")[1])


def truncate_log(log: Path, last_step: int) -> None:
    """A resumed step redoes the steps after its checkpoint: drop their log lines so none is doubled."""
    if not log.is_file():
        return
    kept = [row for row in read_jsonl(log) if row.get("step", 0) <= last_step]
    atomic_write(log, "".join(json.dumps(row) + "\n" for row in kept))


def checkpoint_callback(log_path: Path, every_s: float, label: str, show_progress: bool):
    """A transformers TrainerCallback: a checkpoint every `every_s` seconds, a log.jsonl line per logged step, and
    a progress bar labelled `label` (with `show_progress`). Built here so transformers is imported only to train."""
    from transformers import TrainerCallback

    class CheckpointAndLog(TrainerCallback):
        """Time-based checkpoints, a log line per logged step, and a progress bar."""

        def __init__(self, log_path: Path, every_s: float, label: str, show_progress: bool):
            self.log = AppendLog(log_path)
            self.every_s = every_s
            self.label = label
            self.last_save = time.monotonic()
            self.show_progress = show_progress
            self.bar = contextlib.ExitStack()
            self.progress = None
            self.last: dict[str, float] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            from synthloop.console.progress import bar

            self.progress = self.bar.enter_context(bar(self.label, state.max_steps, unit="steps",
                                                       completed=state.global_step, enabled=self.show_progress))

        def on_step_end(self, args, state, control, **kwargs):
            due = time.monotonic() - self.last_save >= self.every_s and state.global_step < state.max_steps
            if launch.world_size() > 1:  # every process saves together: process 0's clock decides
                from accelerate.utils import broadcast_object_list

                due = broadcast_object_list([due], from_process=0)[0]
            if due:
                control.should_save = True
            if self.progress is not None:
                detail = " · ".join(f"{k} {v:.3g}" for k, v in self.last.items())
                self.progress.update(completed=state.global_step, detail=detail)

        def on_save(self, args, state, control, **kwargs):
            self.last_save = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero:
                return
            logs = dict(logs or {})
            numeric = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
            self.log.write({"step": state.global_step, **numeric})
            for key in ("loss", "reward", "rewards/mean", "rewards_mean", "train_loss"):
                if key in numeric:
                    self.last[key] = numeric[key]

        def on_train_end(self, args, state, control, **kwargs):
            self.close()

        def close(self):
            self.progress = None
            self.bar.close()
            self.log.close()

    return CheckpointAndLog(log_path, every_s, label, show_progress)


def save_final(trainer, tokenizer, out: Path, lora: LoraSettings | None, main: bool = True) -> Path:
    """Write model/ atomically (a temporary directory renamed at the end); with several processes, by process 0
    (under ZeRO-3 or FSDP every process takes part in gathering the sharded weights)."""
    final, tmp = out / "model", out / ".model-tmp"
    if launch.world_size() > 1 and _sharded(trainer):
        return _save_sharded(trainer, tokenizer, out, lora, main)
    if not main:
        return final
    shutil.rmtree(tmp, ignore_errors=True)
    model = trainer.model
    if lora is not None and lora.merge:
        model = model.merge_and_unload()
    if hasattr(model, "config"):
        model.config.use_cache = True  # training turns it off; generation wants it
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def _sharded(trainer) -> bool:
    from accelerate.utils import DistributedType

    return trainer.accelerator.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP)


def _save_sharded(trainer, tokenizer, out: Path, lora: LoraSettings | None, main: bool) -> Path:
    """ZeRO-3 / FSDP: the trainer gathers the full weights (every process takes part) and process 0 writes them;
    a LoRA adapter is then merged into its base on process 0. Not run on this project's CPU-only CI."""
    final, tmp = out / "model", out / ".model-tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    trainer.accelerator.wait_for_everyone()
    if main:
        if lora is not None and lora.merge:
            from peft import AutoPeftModelForCausalLM

            merged = AutoPeftModelForCausalLM.from_pretrained(str(tmp)).merge_and_unload()
            shutil.rmtree(tmp)
            merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    trainer.accelerator.wait_for_everyone()
    return final
