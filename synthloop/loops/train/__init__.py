"""Training steps through TRL (library objects, never a subprocess): SFT, DPO and GRPO, LoRA optional; REDI and
TOPR (objectives on correct and incorrect answers that TRL lacks) as SFTTrainer subclasses.

Each step writes `out/model/` (the new checkpoint), `out/result.json` and `out/log.jsonl`, resumes a
killed run from its last checkpoint, and returns a `TrainResult`.
"""

from synthloop.loops.train.common import TrainResult
from synthloop.loops.train.config import (
    DPOSettings,
    GRPOSettings,
    LoraSettings,
    REDISettings,
    SFTSettings,
    TOPRSettings,
    TrainSettings,
)
from synthloop.loops.train.dpo import dpo
from synthloop.loops.train.grpo import grpo
from synthloop.loops.train.redi import redi
from synthloop.loops.train.rewards import judge_reward
from synthloop.loops.train.sft import sft
from synthloop.loops.train.topr import topr

__all__ = ["DPOSettings", "GRPOSettings", "LoraSettings", "SFTSettings", "TrainResult", "TrainSettings", "dpo", "grpo",
           "judge_reward", "sft"]
__all__ += ["REDISettings", "TOPRSettings", "redi", "topr"]
