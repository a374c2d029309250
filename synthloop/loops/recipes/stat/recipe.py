"""STAT, skill-targeted training (Skill-Targeted Adaptive Training): train on what the student is missing.

A teacher names the skills a task set needs and labels every task with them (`labels: teacher`, an LLM
through a DSPy program whose answer is constrained to the inventory), or the task generator already knows
them (`labels: programmatic`, e.g. the arithmetic generator's add/sub/mul/div). Each round the student
answers a probe set; its failures per skill form the Missing-Skill-Profile (`round-XXX/profile.json`).
Then, with the same SFT budget (`budget` rows) in every variant:

- `sel` (STAT-Sel): the round's training examples (the policy's verified answers, or a dataset's own
  answers with `response_column`) are drawn with sampling weights that move the data toward the missing
  skills;
- `syn` (STAT-Syn): new tasks are made for the missing skills, in proportion to the profile: candidates
  from the task generator kept by their skills (`syn.source: generator`), or Instruct-SkillMix
  instructions over the missing skills, verified by the teacher's self-consistency (`syn.source: skillmix`);
  the policy answers them and its verified answers are the examples;
- `uniform`: the baseline: the same examples as `sel`, drawn without weights.

Every round reports per-skill accuracy on the held-out tasks (`eval_acc_<skill>`, `round-XXX/skills_eval.json`).
"""

from __future__ import annotations

from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.stat.config import StatConfig
from synthloop.loops.recipes.stat.stages import LabelStage, ProbeStage, SelectStage, SkillEvaluateStage, SynthesizeStage
from synthloop.loops.stages import JudgeStage, SampleStage, Stage, TasksStage, TrainStage


class Stat(Recipe):
    name = "stat"
    config_class = StatConfig

    def baseline(self) -> list[Stage]:
        sets = ("eval",) if self.config.variant == "uniform" else ("eval", "probe")
        return [LabelStage(self.config, sets), SkillEvaluateStage(self.config)]

    def stages(self, round_: int) -> list[Stage]:
        cfg = self.config
        if cfg.variant == "syn":
            made = [ProbeStage(cfg), SynthesizeStage(cfg), SampleStage(), JudgeStage()]
        else:
            probe = [ProbeStage(cfg)] if cfg.variant == "sel" else []
            answers = [] if cfg.response_column else [SampleStage(), JudgeStage()]
            made = [TasksStage(), LabelStage(cfg, ("pool",)), *probe, *answers]
        return [*made, SelectStage(cfg), TrainStage("sft"), SkillEvaluateStage(cfg)]

    def describe(self, round_: int) -> str:
        return f"stat-{self.config.variant}" if round_ else "baseline"
