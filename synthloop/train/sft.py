"""Supervised fine-tuning with TRL's SFTTrainer.

    from synthloop.train import sft
    result = sft(model="smollm2-135m-instruct", data="runs/x/sft.jsonl", out="runs/x/sft")
    result.checkpoint   # runs/x/sft/model: load it with any engine

Data rows are TRL's formats: conversational prompt-completion
`{"prompt": [{"role": "user", ...}], "completion": [{"role": "assistant", ...}]}` (loss on the
completion only, by default), `{"messages": [...]}`, or plain `{"prompt": str, "completion": str}` /
`{"text": str}`. The chat template of the model renders conversations exactly as the engines do
when they generate, so what is trained is what is sampled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synthloop.train.common import DataLike, TrainResult, run_training
from synthloop.train.config import SFTSettings


def sft(*, model: str | Path, data: DataLike, out: str | Path, config: SFTSettings | None = None,
        progress: bool = True, log: Callable[[str], None] | None = None) -> TrainResult:
    """Fine-tune `model` (a registered name, a checkpoint directory or a hub id) on `data`; see the module doc."""
    settings = config or SFTSettings()

    def build(policy, tokenizer, args, peft, callbacks, dataset):
        from trl import SFTConfig, SFTTrainer

        cfg = SFTConfig(
            **args,
            max_length=settings.max_length,
            completion_only_loss=settings.completion_only_loss if "completion" in dataset.column_names else None,
            packing=settings.packing,
            dataset_num_proc=None,
        )
        return SFTTrainer(model=policy, args=cfg, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft, callbacks=callbacks)

    return run_training("sft", model=model, data=data, out=out, settings=settings, build_trainer=build,
                        progress=progress, log=log)
