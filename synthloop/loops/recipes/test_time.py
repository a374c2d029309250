"""Test-time self-improvement (TT-SI) and test-time distillation (TT-D), after Acikgoz et al. 2025, "Self-Improving
LLM Agents at Test-Time". For a batch of test inputs (the loop's `tasks.eval`), no reference answer in sight:

1. probe      sample N answers per input with the policy (`sampling.n`); an input is uncertain when the majority
              answer holds less than `probe.min_agreement` of the samples (self-consistency, reference-free)
2. synthesize for each uncertain input, `synthesis.per_input` similar problems, written and solved by the generator
              (the DSPy program `similar_problems`): the policy itself (tt_si) or the `teacher` engine (tt_d)
3. solve      `verify.samples` fresh solutions of each new problem by the generator (the loop's prompt template)
4. verify     the judges score those solutions against the label (the writer's answer, or their own majority);
              a problem is kept when at least `verify.min_agreement` of them are accepted -> data/sft.jsonl
5. train-sft  a temporary LoRA adapter on that data (`train.sft`, with `lora:`), from the base policy
6. answer     greedy answers to the uncertain inputs with the adapted model (the confident ones keep theirs)
7. report     against the baseline (round 0: greedy answers without adaptation, same inputs and settings):
              accuracy on the uncertain subset and overall, how many examples were written, verified and trained
              on; then the adapter is discarded (only the data and the metrics stay)

References are used only to score answers (round 0, `answer`, `report`), never by the probe or the synthesis.
Round r takes the r-th batch of `batch_size` test inputs (default: all of them; each round then repeats the
episode with fresh seeds). Every round starts from the base policy.

    synthloop loop configs/tt_si.yaml
    synthloop loop configs/tt_d.yaml --set recipe.teacher.kind=openai --set recipe.teacher.base_url=http://...
"""

from __future__ import annotations

from typing import Any, Literal

import psutil
from pydantic import Field

from synthloop.configs import RUNTIME, Config
from synthloop.engines.config import EngineConfig
from synthloop.judges.self_consistency import AnswerKey
from synthloop.loops.recipes.base import Recipe
from synthloop.loops.stages import Stage, TrainStage


class ProbeSettings(Config):
    answer_key: AnswerKey = Field("math", description="How samples' answers are compared: math (their final "
                                                      "number) or text (the whole short answer).")
    min_agreement: float = Field(0.5, ge=0, le=1, description="An input is uncertain when its majority answer holds "
                                                              "less than this share of the sampling.n samples.")


class SynthesisSettings(Config):
    per_input: int = Field(4, ge=1, le=64, description="Similar problems written per uncertain input.")
    temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature of the writer.")
    max_tokens: int = Field(256, ge=16, description="Most tokens of one written problem + solution + answer (JSON).")
    max_copy: float = Field(0.95, gt=0, le=1, description="Drop a written problem whose ROUGE-L F1 against the "
                                                          "input is at least this (a copy).")
    min_words: int = Field(5, ge=1, description="Drop written problems shorter than this many words.")


class VerifySettings(Config):
    samples: int = Field(8, ge=1, description="Fresh solutions sampled per written problem (by the generator).")
    temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature of those solutions.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens per solution (default: sampling.max_tokens).")
    label: Literal["writer", "majority"] = Field(
        "writer", description="The answer solutions are judged against: the writer's own answer (a problem is kept "
        "only if the solutions reproduce it) or the solutions' majority answer.")
    min_agreement: float = Field(0.5, ge=0, le=1, description="Keep a written problem when at least this share of "
                                                              "its solutions is accepted against the label.")
    max_per_problem: int = Field(2, ge=1, description="Accepted solutions (distinct) trained on per kept problem.")
    include_truncated: bool = Field(False, description="Also train on accepted solutions cut off at max_tokens.")


class TTSIConfig(Config):
    kind: Literal["tt_si"] = "tt_si"
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


class TTSI(Recipe):
    name = "tt_si"
    config_class = TTSIConfig
    needs_train_tasks = False

    def __init__(self, loop):
        super().__init__(loop)
        self._teacher = None
        self._teacher_procs: list[psutil.Process] = []

    def initial_checkpoints(self) -> dict[str, str]:
        base = self.loop.engine.model
        return {"policy": base, "adapter": base}

    def stages(self, round_: int) -> list[Stage]:
        from synthloop.loops.recipes import test_time_stages as s

        return [s.ProbeStage(self), s.SynthesizeStage(self), s.SolveStage(self), s.VerifyStage(self),
                TrainStage("sft", role="adapter"), s.AnswerStage(self), s.ReportStage(self)]

    def describe(self, round_: int) -> str:
        return self.name if round_ else "baseline"

    # -- the generator: the policy (TT-SI) or the teacher (TT-D) -----------------------------------
    @property
    def teacher_config(self) -> EngineConfig | None:
        return getattr(self.config, "teacher", None)

    def generator(self, ctx) -> Any:
        """The engine that writes and solves similar problems. A local teacher never runs beside the policy's
        engine: the controller's engine is closed first."""
        if self.teacher_config is None:
            return ctx.engine()
        if self._teacher is None:
            from synthloop import engines
            from synthloop.loops.controller import _is_resource_tracker

            ctx.controller.close_engine()
            ctx.log(f"starting the teacher ({engines.resolve_kind(self.teacher_config.kind)} engine on "
                    f"{self.teacher_config.model}) ...")
            before = {p.pid for p in psutil.Process().children(recursive=True)}
            self._teacher = engines.from_config(self.teacher_config, log=ctx.log)
            self._teacher_procs = [p for p in psutil.Process().children(recursive=True)
                                   if p.pid not in before and not _is_resource_tracker(p)]
        return self._teacher

    def release_generator(self) -> None:
        if self._teacher is not None:
            from synthloop.loops.memory import release_memory

            teacher, self._teacher = self._teacher, None
            teacher.close()
            del teacher
            psutil.wait_procs(self._teacher_procs, timeout=60)  # vLLM's processes, before training allocates
            self._teacher_procs = []
            release_memory()


class TTD(TTSI):
    name = "tt_d"
    config_class = TTDConfig
