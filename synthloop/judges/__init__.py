"""Judges decide what reaches training: LLM judges, a trained reward model, programmatic verifiers, filters.

    from synthloop.judges import LLMJudge, RewardModel, GenerativeJudge, VerifierJudge
    from synthloop.judges.verifiers import MathAnswerVerifier, IFEvalVerifier, CodeVerifier
    from synthloop.judges.filters import run_filters

Every judge has `score(items)` and `compare(pairs)` (batch-first) and `filter(records, min_score=...)`.
Heavy modules (torch, DSPy) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from synthloop.judges.base import Judge, JudgeItem, Judgement, PairItem, Preference, VerifierJudge

_LAZY = {
    "LLMJudge": "synthloop.judges.llm_judge",
    "LLMJudgeConfig": "synthloop.judges.llm_judge",
    "RewardModel": "synthloop.judges.reward_model",
    "RewardModelConfig": "synthloop.judges.reward_model",
    "TrainConfig": "synthloop.judges.reward_model",
    "create_reward_model": "synthloop.judges.reward_model",
    "CrossEncoderRewardModel": "synthloop.judges.cross_encoder",
    "AugmentConfig": "synthloop.judges.augment",
    "read_pairs": "synthloop.judges.preference_data",
    "decontaminate": "synthloop.judges.preference_data",
    "PreferencePair": "synthloop.judges.preference_data",
    "load_hh_rlhf": "synthloop.judges.preference_data",
    "pairs_from_ranked": "synthloop.judges.preference_data",
    "JudgeSpec": "synthloop.judges.spec",
    "build_judge": "synthloop.judges.spec",
    "judge_sft_records": "synthloop.judges.generative",
    "build_judge_sft_data": "synthloop.judges.generative",
    "GenerativeJudge": "synthloop.judges.generative_judge",
    "GenerativeJudgeConfig": "synthloop.judges.generative_judge",
    "GenerativeTrainSettings": "synthloop.judges.generative_train",
    "train_generative_judge": "synthloop.judges.generative_train",
}

__all__ = ["Judge", "JudgeItem", "Judgement", "PairItem", "Preference", "VerifierJudge", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthloop.judges' has no attribute {name!r}")
