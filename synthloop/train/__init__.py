"""Training steps through TRL (library objects, never a subprocess): SFT, DPO and GRPO, LoRA optional; REDI and
TOPR (objectives on correct and incorrect answers that TRL lacks) as SFTTrainer subclasses.

Each step writes `out/model/` (the new checkpoint), `out/result.json` and `out/log.jsonl`, resumes a
killed run from its last checkpoint, and returns a `TrainResult`.
"""

from synthloop.train.common import TrainResult
from synthloop.train.config import (
    DPOSettings,
    GRPOSettings,
    LoraSettings,
    REDISettings,
    SFTSettings,
    TOPRSettings,
    TrainSettings,
)
from synthloop.train.dpo import dpo
from synthloop.train.grpo import grpo
from synthloop.train.redi import redi
from synthloop.train.sft import sft
from synthloop.train.topr import topr

__all__ = ["DPOSettings", "GRPOSettings", "LoraSettings", "SFTSettings", "TrainResult", "TrainSettings", "dpo", "grpo",
           "sft"]
__all__ += ["REDISettings", "TOPRSettings", "redi", "topr"]
