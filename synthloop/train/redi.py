"""REDI, Reinforcement Distillation (Xu et al. 2025, arXiv:2505.24850): the refinement stage on correct AND incorrect
answers, after an SFT stage on the correct ones.

    from synthloop.train import redi, sft
    sft(model="smollm2-135m-instruct", data="runs/x/sft.jsonl", out="runs/x/sft")             # stage 1
    redi(model="runs/x/sft/model", data="runs/x/pairs.jsonl", out="runs/x/redi")              # stage 2

Rows are preference pairs, as DPO takes them: `{"prompt": [messages], "chosen": [assistant turn], "rejected":
[assistant turn]}` (or plain strings), chosen = a verified-correct answer, rejected = an incorrect one. Each pair
becomes two sequences; the loss (`sequence_trainers.REDITrainer`) raises the length-normalized log-likelihood of the
correct answer and lowers that of the incorrect one with the smaller weight `alpha`. No reference model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from synthloop.train.common import DataLike, TrainResult, run_training
from synthloop.train.config import REDISettings


def pair_sequences(pairs) -> Iterator[dict[str, Any]]:
    """Preference pairs -> two prompt-completion rows each: the chosen answer (sign +1), the rejected one (sign -1)."""
    for pair in pairs:
        yield {"prompt": pair["prompt"], "completion": pair["chosen"], "sign": 1.0}
        yield {"prompt": pair["prompt"], "completion": pair["rejected"], "sign": -1.0}


def redi(*, model: str | Path, data: DataLike, out: str | Path, config: REDISettings | None = None,
         progress: bool = True, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train `model` with the REDI objective on preference pairs; see the module doc."""
    import datasets

    settings = config or REDISettings()

    def build(policy, tokenizer, args, peft, callbacks, dataset):
        from trl import SFTConfig

        from synthloop.train.sequence_trainers import REDITrainer

        cfg = SFTConfig(**args, max_length=settings.max_length, completion_only_loss=True, packing=False,
                        dataset_num_proc=None)
        return REDITrainer(model=policy, args=cfg, train_dataset=dataset, processing_class=tokenizer,
                           peft_config=peft, callbacks=callbacks, alpha=settings.alpha)

    return run_training("redi", model=model, data=data, out=out, settings=settings, build_trainer=build,
                        columns=("prompt", "chosen", "rejected"),
                        what="pairs of a correct and an incorrect answer",
                        prepare=lambda pairs: datasets.Dataset.from_list(list(pair_sequences(pairs))),
                        progress=progress, log=log)
