"""The config of `synthloop loop`: tasks, policy, samples, judges, training per round, evaluation, rounds.

Fields marked RUNTIME (rounds, the stop rule, concurrency, where the summary goes) can change between
sessions of the same run: raising `rounds` continues a finished loop. Anything else that changes the
outputs makes a rerun refuse the directory (see `--resume`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from synthloop.configs import RUNTIME, Config
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import sampling_config
from synthloop.judges.spec import JudgeSpec, MathAnswerSpec
from synthloop.loops.recipes.configs import RecipeConfig, default_recipe
from synthloop.loops.tasks import TaskSource
from synthloop.synth.executor import ExecutorConfig, LocalExecutor
from synthloop.train.config import DPOSettings, GRPOSettings, SFTSettings

Method = Literal["sft", "dpo", "grpo", "sft+dpo",
                 "redi", "topr", "sft+redi", "sft+topr"]  # the last four: recipe `negatives`


class TasksConfig(Config):
    train: TaskSource | None = Field(None, description="Where training tasks come from (a dataset, a generator, or "
                                     "a synthesis program writing each round's tasks: kind program); needed by "
                                     "every recipe that trains on tasks (all but tt_si / tt_d).")
    eval: TaskSource = Field(description="The held-out evaluation tasks (kept disjoint from training tasks).")
    per_round: int = Field(128, ge=1, description="Training tasks sampled (or, with a program source, written and "
                                                  "kept) per round.")
    eval_count: int | None = Field(200, ge=1, description="Held-out tasks evaluated (the first ones of the source).")
    fresh_each_round: bool = Field(
        True, description="Each round takes the next `per_round` tasks (wrapping around a finite dataset); "
        "false reuses the same tasks every round."
    )


class PromptConfig(Config):
    template: str = Field("{prompt}", description="The user turn; {column} slots are filled from each task row.")
    system: str | None = Field(None, description="A system turn (default: the model's own default, if any).")


class TrainPlan(Config):
    plan: list[Method] = Field(
        default_factory=lambda: ["sft"],
        description="Training method of round 1, 2, ... (the last one repeats): sft on accepted samples, dpo on "
        "best-vs-worst pairs, grpo with the judges as reward, or sft+dpo (both, in that order). With recipe "
        "`negatives` also redi (REDI on correct-vs-incorrect pairs), topr (TOPR on correct and incorrect samples), "
        "sft+redi, sft+topr.",
    )
    sft: SFTSettings = SFTSettings()
    dpo: DPOSettings = DPOSettings()
    grpo: GRPOSettings = GRPOSettings()
    continue_from: Literal["latest", "best"] = Field(
        "latest", description="Round r+1 trains from round r's checkpoint (latest) or from the best one so far "
        "on the held-out metric (best: a round that hurt is not built upon)."
    )

    def method(self, round_: int) -> Method:
        return self.plan[min(round_, len(self.plan)) - 1]


class StopRule(Config):
    metric: str = Field("eval_accuracy", description="The per-round metric the rule watches.")
    target: float | None = Field(None, description="Stop once the metric reaches this.")
    patience: int | None = Field(None, ge=1, description="Stop after this many rounds without a new best.")
    min_delta: float = Field(0.0, ge=0, description="Smallest gain that counts as a new best.")


class LoopConfig(Config):
    name: str | None = Field(None, description="Run name (its directory under output_dir); default: the config "
                                               "file's name.", json_schema_extra=RUNTIME)
    output_dir: Path = Field(Path("runs"), description="Where run directories go.", json_schema_extra=RUNTIME)
    recipe: RecipeConfig = Field(default_factory=default_recipe, description="The recipe and its knobs; `kind` "
                                 "picks it (expert_iteration: rejection-sampling self-training).")
    engine: EngineConfig = Field(EngineConfig(), description="The engine sampling the policy; `engine.model` is the "
                                 "starting policy (later rounds swap in their checkpoints).")
    tasks: TasksConfig
    prompt: PromptConfig = PromptConfig()
    sampling: sampling_config("How training answers are sampled: n per task, temperature, ...",
                              keys=("n", "temperature", "top_p", "max_tokens", "stop"), n=8, temperature=0.8,
                              max_tokens=256)
    eval: sampling_config("How held-out answers are sampled (greedy by default: accuracy).", temperature=0.0,
                          max_tokens=256)
    judges: list[JudgeSpec] = Field(default_factory=lambda: [MathAnswerSpec()],
                                    description="Judges and verifiers (any judge spec: synthloop.judges.spec); a "
                                    "sample is accepted when all accept it, ranked by their weighted score.")
    train: TrainPlan = TrainPlan()
    rounds: int = Field(2, ge=0, description="Training rounds after the baseline evaluation (round 0).",
                        json_schema_extra=RUNTIME)
    stop: StopRule = Field(StopRule(), description="Stop early on a target or a plateau.", json_schema_extra=RUNTIME)
    seed: int = Field(0, description="Run seed: sampling seeds, task order and training seeds derive from it.")
    concurrency: int = Field(64, ge=1, description="Tasks in flight at once while sampling.",
                             json_schema_extra=RUNTIME)
    executor: ExecutorConfig = Field(
        LocalExecutor(), description="Where the policy's sampling and evaluation run: local (one engine in this "
        "process) or ray (replicas of the engine on a Ray cluster, each loading the round's checkpoint: on several "
        "nodes the run directory must be on shared storage; docs/scale.md).", json_schema_extra=RUNTIME)
    summary_json: Path | None = Field(None, description="Also write the loop summary (per-round figures) here.",
                                      json_schema_extra=RUNTIME)
    plot: bool = Field(True, description="Write rounds.png (metrics per round) when the loop ends.",
                       json_schema_extra=RUNTIME)

    def tasks_arrive_elsewhere(self) -> bool:
        """True when training tasks come from somewhere other than `tasks.train` (a schedule's inbox)."""
        return False

    @model_validator(mode="after")
    def _check(self) -> LoopConfig:
        needs_pairs = any(m in ("dpo", "sft+dpo") for m in self.train.plan)
        if needs_pairs and self.sampling.n < 2:
            raise ValueError("train.plan has dpo: sampling.n must be at least 2 to rank samples into pairs")
        if not self.train.plan:
            raise ValueError("train.plan: name the method of at least one round (sft, dpo, grpo, sft+dpo)")
        check = getattr(self.recipe, "check_loop", None)  # a recipe's own rules about the rest of the config
        if check is not None:
            check(self)
        negatives = sorted({m for m in self.train.plan if "redi" in m or "topr" in m})
        if negatives and self.recipe.kind != "negatives":
            raise ValueError(f"train.plan has {', '.join(negatives)}: these methods belong to recipe `negatives` "
                             f"(set recipe.kind=negatives)")
        if any("redi" in m for m in self.train.plan) and self.sampling.n < 2:
            raise ValueError("train.plan has redi: sampling.n must be at least 2 to pair correct with incorrect "
                             "answers")
        if any("topr" in m for m in self.train.plan) and self.sampling.top_p < 1:
            raise ValueError("train.plan has topr: sampling.top_p must be 1 (TOPR's importance weights need the "
                             "sampler's probabilities, computed as plain tempered sampling)")
        source = getattr(self.tasks, "train", None)
        if getattr(source, "kind", None) == "program" and not getattr(self.recipe, "program_tasks", False):
            raise ValueError(f"tasks.train: a program source writes tasks in the tasks stage of recipes "
                             f"expert_iteration and negatives; recipe {self.recipe.kind} reads its tasks another way")
        if source is None and not self.tasks_arrive_elsewhere() and getattr(self.recipe, "needs_train_tasks", True):
            raise ValueError(f"tasks.train: recipe {self.recipe.kind} trains on tasks; name their source")
        return self
