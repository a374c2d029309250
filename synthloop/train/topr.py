"""TOPR, Tapered Off-Policy REINFORCE (Le Roux, Bellemare et al. 2025, arXiv:2503.14286), offline: learn from
scored samples of a behaviour policy, correct ones and incorrect ones alike.

    from synthloop.train import topr
    topr(model="smollm2-135m-instruct", data="runs/x/topr.jsonl", out="runs/x/topr",
         behavior_model="smollm2-135m-instruct")      # the policy that drew the samples (default: `model`)

Rows: `{"prompt": [messages], "completion": [assistant turn], "reward": float}` (or plain strings), optionally
`behavior_logp` (the completion's log-probability under the sampler). A sample with reward - baseline >= 0 gets the
SFT-like update, one below it a truncated importance-weighted update (`sequence_trainers.TOPRTrainer`). Without a
`behavior_logp` column, the behaviour log-probabilities are computed before training with `behavior_model` at
`config.behavior_temperature` (the temperature the samples were drawn at).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synthloop.train.common import DataLike, TrainResult, on_gpu, run_training
from synthloop.train.config import TOPRSettings


def topr(*, model: str | Path, data: DataLike, out: str | Path, config: TOPRSettings | None = None,
         behavior_model: str | Path | None = None, progress: bool = True,
         log: Callable[[str], None] | None = None) -> TrainResult:
    """Train `model` with TOPR on rewarded samples; see the module doc."""
    from synthloop.engines import registry

    settings = config or TOPRSettings()
    temperature = 1.0 if settings.behavior_temperature is None else settings.behavior_temperature

    def build(policy, tokenizer, args, peft, callbacks, dataset):
        from trl import SFTConfig

        from synthloop.train.sequence_trainers import TOPRTrainer

        cfg = SFTConfig(**args, max_length=settings.max_length, completion_only_loss=True, packing=False,
                        dataset_num_proc=None)
        behavior = None  # the policy as loaded (before any update) is the behaviour policy
        if behavior_model is not None:
            behavior_path = registry.resolve(str(behavior_model))
            if Path(behavior_path).resolve() != Path(registry.resolve(str(model))).resolve():
                behavior = _load_behavior(behavior_path)
        try:
            return TOPRTrainer(model=policy, args=cfg, train_dataset=dataset, processing_class=tokenizer,
                               peft_config=peft, callbacks=callbacks, baseline=settings.baseline,
                               length_normalize=settings.length_normalize, behavior_model=behavior,
                               behavior_temperature=temperature)
        finally:
            del behavior  # only needed for the log-probabilities computed in __init__

    return run_training("topr", model=model, data=data, out=out, settings=settings, build_trainer=build,
                        columns=("prompt", "completion", "reward"), what="samples", progress=progress, log=log,
                        relaunch={"behavior_model": None if behavior_model is None else str(behavior_model)})


def _load_behavior(path: str | Path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return model.to("cuda") if on_gpu() else model
