"""The `recipe:` sections of test-time self-improvement (tt_si) and test-time distillation (tt_d)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from synthloop.configs import RUNTIME, Config
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import sampling_config
from synthloop.judges.self_consistency import AnswerKey


class ProbeSettings(Config):
    answer_key: AnswerKey = Field("math", description="How samples' answers are compared: math (their final "
                                                      "number) or text (the whole short answer).")
    min_agreement: float = Field(0.5, ge=0, le=1, description="An input is uncertain when its majority answer holds "
                                                              "less than this share of the sampling.n samples.")


class SynthesisSettings(Config):
    per_input: int = Field(4, ge=1, le=64, description="Similar problems written per uncertain input.")
    sampling: sampling_config("How the writer samples (max_tokens: one written problem + solution + answer, "
                              "JSON).", temperature=0.8, max_tokens=256)
    max_copy: float = Field(0.95, gt=0, le=1, description="Drop a written problem whose ROUGE-L F1 against the "
                                                          "input is at least this (a copy).")
    min_words: int = Field(5, ge=1, description="Drop written problems shorter than this many words.")


class VerifySettings(Config):
    samples: int = Field(8, ge=1, description="Fresh solutions sampled per written problem (by the generator).")
    sampling: sampling_config("How those solutions are sampled.", keys=("temperature", "top_p", "max_tokens"),
                              temperature=0.8, max_tokens=256)
    label: Literal["writer", "majority"] = Field(
        "writer", description="The answer solutions are judged against: the writer's own answer (a problem is kept "
        "only if the solutions reproduce it) or the solutions' majority answer.")
    min_agreement: float = Field(0.5, ge=0, le=1, description="Keep a written problem when at least this share of "
                                                              "its solutions is accepted against the label.")
    max_per_problem: int = Field(2, ge=1, description="Accepted solutions (distinct) trained on per kept problem.")
    include_truncated: bool = Field(False, description="Also train on accepted solutions cut off at max_tokens.")


class TTSIConfig(Config):
    kind: Literal["tt_si"] = "tt_si"
    #: works on the held-out inputs alone: the loop config needs no tasks.train
    needs_train_tasks: ClassVar[bool] = False
    batch_size: int | None = Field(None, ge=1, description="Test inputs per round (round r takes the r-th batch of "
                                                           "the held-out tasks); default: all of them every round.")
    probe: ProbeSettings = ProbeSettings()
    synthesis: SynthesisSettings = SynthesisSettings()
    verify: VerifySettings = VerifySettings()
    keep_adapter: bool = Field(False, description="Keep the adapted checkpoint after answering (default: deleted, "
                                                  "as TT-SI discards it; the data and metrics stay).",
                               json_schema_extra=RUNTIME)


class TTDConfig(TTSIConfig):
    kind: Literal["tt_d"] = "tt_d"  # type: ignore[assignment]
    teacher: EngineConfig = Field(description="The stronger engine that writes and solves the similar problems: any "
                                              "engine section (vllm, transformers, or openai with base_url).")
