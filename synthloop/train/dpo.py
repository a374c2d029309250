"""Direct preference optimisation with TRL's DPOTrainer.

    result = dpo(model="runs/x/sft/model", data="runs/x/pairs.jsonl", out="runs/x/dpo")

Rows: `{"prompt": [messages], "chosen": [assistant turn], "rejected": [assistant turn]}` (conversational,
as `synthloop.loops.pairs` builds them) or plain strings. The reference model is the starting policy:
a frozen copy for full fine-tuning, the adapter-less base under LoRA (no second copy in memory).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synthloop.train.common import DataLike, TrainResult, run_training
from synthloop.train.config import DPOSettings


def dpo(*, model: str | Path, data: DataLike, out: str | Path, config: DPOSettings | None = None,
        progress: bool = True, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train `model` on preference pairs; see the module doc."""
    settings = config or DPOSettings()

    def build(policy, tokenizer, args, peft, callbacks, dataset):
        from trl import DPOConfig, DPOTrainer

        cfg = DPOConfig(**args, beta=settings.beta, loss_type=[settings.loss_type], max_length=settings.max_length,
                        dataset_num_proc=None)
        return DPOTrainer(model=policy, args=cfg, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft, callbacks=callbacks)

    return run_training("dpo", model=model, data=data, out=out, settings=settings, build_trainer=build,
                        columns=("prompt", "chosen", "rejected"), what="preference pairs", progress=progress, log=log)
