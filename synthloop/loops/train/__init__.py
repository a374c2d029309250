"""Training steps through TRL (library objects, never a subprocess): SFT, DPO and GRPO, LoRA optional.

Each step writes `out/model/` (the new checkpoint), `out/result.json` and `out/log.jsonl`, resumes a
killed run from its last checkpoint, and returns a `TrainResult`.
"""

from synthloop.loops.train.common import TrainResult
from synthloop.loops.train.config import DPOSettings, GRPOSettings, LoraSettings, SFTSettings, TrainSettings
from synthloop.loops.train.dpo import dpo
from synthloop.loops.train.grpo import grpo
from synthloop.loops.train.rewards import judge_reward
from synthloop.loops.train.sft import sft

__all__ = ["DPOSettings", "GRPOSettings", "LoraSettings", "SFTSettings", "TrainResult", "TrainSettings", "dpo", "grpo",
           "judge_reward", "sft"]
