"""Latent-thought EM (BoLT, "Reasoning to Learn from Latent Thoughts"): the model infers the thoughts behind its
training documents, and learns from the documents with those thoughts written out; each round the new checkpoint
infers the next round's thoughts.

Round r >= 1, on the same documents every round (`tasks.fresh_each_round: false`, the paper's fixed-data setting):

  tasks      the documents (rows of `tasks.train`; `prompt` holds the document)
  thoughts   E-step: the `latent_thoughts` program with the current policy: N thoughts per document, each scored
             by the engine's log-likelihoods (log p(X|Z), log p(Z), log q(Z|X), importance weight)
  build      draws thoughts by their normalized importance weights -> data/sft.jsonl, thought-augmented documents as
             plain text (`{"text": ...}`); data/raw.jsonl, the same documents without thoughts
  train-sft  M-step: SFT (plain-text language modelling, loss on thought and document) from the latest checkpoint,
             or from the starting model each round (`m_step_from: base`, as the paper retrains)
  train-control / evaluate-control   the control arm (`control_arm: true`): the raw documents, the same number of
             optimizer steps, from its own previous checkpoint (or the starting model), evaluated the same way
  evaluate   held-out perplexity of documents (`perplexity.py`), alone and, with `eval_context`, after
             a known latent in the thought slot (e.g. the GSM8K question behind a worked solution)

Not in this recipe (stated, not hidden): the paper also trains the posterior q(Z|X) (documents followed by their
thoughts); here only the joint p(Z, X) is trained, and the proposal improves only through the shared weights.
"""

from __future__ import annotations

from typing import Any

from synthloop.loops.recipes.base import Recipe
from synthloop.loops.recipes.latent_thought_em.config import LatentThoughtEMConfig
from synthloop.loops.recipes.latent_thought_em.perplexity import PerplexityStage
from synthloop.loops.recipes.latent_thought_em.stages import AugmentStage, ControlTrainStage, MStepStage, ThoughtsStage
from synthloop.loops.stages import Stage, TasksStage


class LatentThoughtEM(Recipe):
    name = "latent_thought_em"
    config_class = LatentThoughtEMConfig

    def initial_checkpoints(self) -> dict[str, str]:
        start = self.loop.engine.model
        return {"policy": start, "control": start} if self.config.control_arm else {"policy": start}

    def _evaluate(self, **kwargs: Any) -> Stage:
        return PerplexityStage(context_column=self.config.eval_context, template=self.config.template, **kwargs)

    def baseline(self) -> list[Stage]:
        prefixes = ("", "control_") if self.config.control_arm else ("",)
        return [self._evaluate(prefixes=prefixes)]  # both arms start from the same model

    def stages(self, round_: int) -> list[Stage]:
        o = self.config
        stages: list[Stage] = [TasksStage(), ThoughtsStage(o), AugmentStage(o), MStepStage(o)]
        if o.control_arm:  # evaluated before the policy, so the policy's engine stays up for the next E-step
            stages += [ControlTrainStage(o),
                       self._evaluate(name="evaluate-control", role="control", prefixes=("control_",))]
        return [*stages, self._evaluate()]

    def describe(self, round_: int) -> str:
        return f"em N={self.config.num_thoughts}" if round_ else "baseline"
