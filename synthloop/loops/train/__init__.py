"""Training steps through TRL (library objects, never a subprocess): SFT, DPO and GRPO, LoRA optional.

Each step writes `out/model/` (the new checkpoint), `out/result.json` and `out/log.jsonl`, resumes a
killed run from its last checkpoint, and returns a `TrainResult`.
"""

from synthloop.loops.train.common import TrainResult
from synthloop.loops.train.config import DPOSettings, GRPOSettings, LoraSettings, SFTSettings, TrainSettings
from synthloop.loops.train.sft import sft

__all__ = ["DPOSettings", "GRPOSettings", "LoraSettings", "SFTSettings", "TrainResult", "TrainSettings", "sft"]
