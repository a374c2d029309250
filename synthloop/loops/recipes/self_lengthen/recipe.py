"""Self-Lengthen (Quan et al. 2024, "Language Models Can Self-Lengthen to Generate Long Texts", QwenLM/Self-Lengthen):
two roles of one base model make its answers longer, round after round, without a stronger teacher.

    round r (length target T_r words; `targets`, the last one repeats):
      tasks         instructions (no length) + a length demand of T_r words   -> tasks.jsonl
      sample        the Generator ("policy" role) drafts n answers per task     -> samples/
      extend        the Extender ("extender" role) splits each draft into `parts` parts at paragraph
                    boundaries and expands them in order (each part asked for its share of T_r words,
                    seeing the end of the text expanded so far), joined into one longer whole -> extend/
      filter        drop extensions that repeat themselves or drift from their draft / instruction
                    (`filters`: synthloop.judges.filters' repetition and similarity) -> filtered/
      build         Generator data: instruction + a demand of the extension's actual length -> the
                    extension (Self-Lengthen's length-control step); Extender data: each expansion request
                    -> its expansion                                             -> data/
      train-generator, train-extender   SFT of each role from its own checkpoint (separate checkpoints)
      evaluate      answers of the Generator (at eval.temperature) to held-out LongBench-Write prompts: S_l
                    (LongWriter's length score), words, repetition, relevance, an LLM judge's quality score (1-10)

Round 0 evaluates the starting model. What the paper's scripts do that this does not: self-instruct new
instructions each round (here: a fixed instruction pool, `tasks.train`), several extension attempts per draft
(here: `sampling.n` drafts per instruction, one extension each), and training the Extender on whole responses
(here: on the per-part requests it actually serves).
"""

from __future__ import annotations

from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.self_lengthen import stages as st
from synthloop.loops.recipes.self_lengthen.config import SelfLengthenConfig
from synthloop.loops.stages import SampleStage, Stage


class SelfLengthen(Recipe):
    name = "self_lengthen"
    config_class = SelfLengthenConfig

    def initial_checkpoints(self) -> dict[str, str]:
        base = self.loop.engine.model
        return {"policy": base, "extender": base}

    def baseline(self) -> list[Stage]:
        return [st.LengthEvaluateStage(self.config)]

    def stages(self, round_: int) -> list[Stage]:
        cfg: SelfLengthenConfig = self.config
        return [st.LengthTasksStage(cfg), SampleStage(), st.ExtendStage(cfg), st.FilterExtensionsStage(cfg),
                st.BuildLengthDataStage(cfg), st.RoleSFTStage("generator", "policy"),
                st.RoleSFTStage("extender", "extender", cfg.extender_sft), st.LengthEvaluateStage(cfg)]

    def describe(self, round_: int) -> str:
        return f"target {self.config.target(round_)}w" if round_ else "baseline"

