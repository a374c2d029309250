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

    synthloop loop configs/loop/tt_si.yaml
    synthloop loop configs/loop/tt_d.yaml --set recipe.teacher.kind=openai --set recipe.teacher.base_url=http://...
"""

from __future__ import annotations

from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.ttsi import stages as s
from synthloop.loops.recipes.ttsi.config import TTDConfig, TTSIConfig
from synthloop.loops.stages import Stage, TrainStage


class TTSI(Recipe):
    name = "tt_si"
    config_class = TTSIConfig

    def initial_checkpoints(self) -> dict[str, str]:
        base = self.loop.engine.model
        return {"policy": base, "adapter": base}

    def stages(self, round_: int) -> list[Stage]:
        cfg = self.config
        return [s.ProbeStage(cfg), s.SynthesizeStage(cfg), s.SolveStage(cfg), s.VerifyStage(cfg),
                TrainStage("sft", role="adapter"), s.AnswerStage(cfg), s.ReportStage(cfg)]

    def describe(self, round_: int) -> str:
        return self.name if round_ else "baseline"


class TTD(TTSI):
    name = "tt_d"
    config_class = TTDConfig
