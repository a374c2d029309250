"""A reward model trained with TRL's RewardTrainer: any sequence-classification backbone (MiniLM, SmolLM2 with
a score head, ...) reads prompt and response together and outputs one scalar.

    rm = CrossEncoderRewardModel.create(RewardModelConfig(architecture="cross_encoder"))
    rm.fit(pairs, TrainConfig(epochs=1))          # TRL RewardTrainer: -log sigmoid(r(chosen) - r(rejected))
    rm.save(path); RewardModel.load(path)          # the artifact's config.json routes the load here

Inputs are tokenized here, not by TRL: the prompt keeps its end (`max_prompt_tokens`), the response its start
(`max_response_tokens`), joined with the backbone's own special tokens. TRL's own tokenization would drop every
pair longer than `max_length` instead of truncating it, and most helpfulness answers are longer than any
length this machine can afford. The trainer then gets `chosen_ids`/`rejected_ids` (its pre-tokenized format).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from synthloop.judges.preference_data import PreferencePair, render_prompt, render_response
from synthloop.judges.reward_model_base import RewardModelConfig, ScalarRewardJudge, TrainConfig, encoder_path


def _backbone_path(name: str) -> str:
    if name.lower() in ("smollm2-135m-instruct", "smollm2"):
        from synthloop.engines.registry import prepare

        return str(prepare("smollm2-135m-instruct"))
    return encoder_path(name)


class CrossEncoderRewardModel(ScalarRewardJudge):
    def __init__(self, model, tokenizer, config: RewardModelConfig, metrics: dict[str, Any] | None = None,
                 path: Path | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.metrics = metrics or {}
        self.path = path
        self._inference_model = None
        torch.set_num_threads(config.threads or os.cpu_count() or 1)

    @classmethod
    def create(cls, config: RewardModelConfig, *, seed: int = 0) -> CrossEncoderRewardModel:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        torch.manual_seed(seed)
        source = _backbone_path(config.encoder)
        tokenizer = AutoTokenizer.from_pretrained(source)
        if tokenizer.pad_token is None:  # decoder backbones (SmolLM2): pad with EOS, scored at the last real token
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        return cls(model, tokenizer, config)

    def save(self, path: str | Path) -> Path:
        """An artifact directory: config.json (architecture: cross_encoder), metrics.json, model/."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path / "model")
        self.tokenizer.save_pretrained(path / "model")
        self.write_metadata(path)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> CrossEncoderRewardModel:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "model").is_dir():
            raise FileNotFoundError(f"{path}: not a cross-encoder reward-model artifact (expected config.json, model/)")
        raw = json.loads((path / "config.json").read_text())
        raw.pop("kind", None)
        config = RewardModelConfig(**{**raw, **overrides})
        tokenizer = AutoTokenizer.from_pretrained(path / "model")
        model = AutoModelForSequenceClassification.from_pretrained(path / "model", dtype=torch.float32)
        metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
        return cls(model.eval(), tokenizer, config, metrics=metrics, path=path)

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, "path": str(self.path) if self.path else None, "encoder": self.config.encoder,
                "architecture": "cross_encoder"}

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> list[list[int]]:
        """Token ids of (prompt end, response start) joined with the backbone's special tokens."""
        tok = self.tokenizer
        p_ids = tok(list(dict.fromkeys(prompts)), add_special_tokens=False)["input_ids"]
        p_map = dict(zip(dict.fromkeys(prompts), p_ids, strict=True))
        r_ids = tok(list(responses), add_special_tokens=False)["input_ids"]
        out = []
        for prompt, response in zip(prompts, r_ids, strict=True):
            p = p_map[prompt][-self.config.max_prompt_tokens:]
            r = response[: self.config.max_response_tokens]
            if tok.cls_token_id is not None and tok.sep_token_id is not None:  # BERT-style: [CLS] p [SEP] r [SEP]
                out.append([tok.cls_token_id, *p, tok.sep_token_id, *r, tok.sep_token_id])
            else:  # decoder backbones (SmolLM2) score the last token: end on EOS, as TRL does
                out.append([*p, *r, tok.eos_token_id])
        return out

    def _scoring_model(self):
        if self._inference_model is None:
            model = self.model.eval()
            if self.config.inference_dtype == "bfloat16":
                import copy

                model = copy.deepcopy(self.model).eval().to(torch.bfloat16)
            self._inference_model = model
        return self._inference_model

    def rewards(self, prompts: Sequence[Any], responses: Sequence[Any]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return []
        ids = self.encode([render_prompt(p) for p in prompts], [render_response(r) for r in responses])
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = [0.0] * len(ids)
        model = self._scoring_model()
        with torch.inference_mode():
            for start in range(0, len(order), self.config.batch_size):
                chunk = order[start:start + self.config.batch_size]
                batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                for row, i in enumerate(chunk):
                    out[i] = float(logits[row, 0])
        return out

    # -- training ------------------------------------------------------------------------------------
    def fit(self, pairs: Sequence[PreferencePair], config: TrainConfig | None = None, *,
            eval_pairs: Sequence[PreferencePair] = (), log: Callable[[str], None] | None = None,
            progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
        """TRL RewardTrainer on (prompt, chosen, rejected); returns (and keeps) the metrics."""
        from datasets import Dataset
        from transformers import PrinterCallback, TrainerCallback
        from trl import RewardConfig, RewardTrainer

        config = config or TrainConfig()
        if not pairs:
            raise ValueError("no training pairs")
        prompts = [render_prompt(p.prompt) for p in pairs]
        chosen = self.encode(prompts, [render_response(p.chosen) for p in pairs])
        rejected = self.encode(prompts, [render_response(p.rejected) for p in pairs])
        dataset = Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected})
        losses: list[float] = []

        class Progress(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    losses.append(float(logs["loss"]))
                    if progress:
                        progress(state.global_step, state.max_steps, losses[-1])

        started = time.time()
        self._inference_model = None
        with tempfile.TemporaryDirectory() as scratch:
            args = RewardConfig(
                output_dir=scratch, per_device_train_batch_size=config.batch_size, num_train_epochs=config.epochs,
                max_steps=config.max_steps or -1, learning_rate=config.lr, weight_decay=config.weight_decay,
                warmup_steps=config.warmup_ratio, lr_scheduler_type="linear", seed=config.seed, max_length=None,
                use_cpu=True, bf16=False, fp16=False, report_to="none", save_strategy="no", logging_steps=1,
                dataloader_pin_memory=False, gradient_checkpointing=False, disable_dropout=False,
                max_grad_norm=1.0, disable_tqdm=True)
            trainer = RewardTrainer(model=self.model, args=args, train_dataset=dataset,
                                    processing_class=self.tokenizer, callbacks=[Progress()])
            trainer.remove_callback(PrinterCallback)  # our progress bar reports the loss
            trainer.train()
            steps = trainer.state.global_step
        self.model = trainer.model.eval()
        self._inference_model = None
        held = self.accuracy(eval_pairs) if eval_pairs else None
        if log and held is not None:
            log(f"step {steps}: held-out accuracy {held:.3f}")
        window = max(1, min(20, len(losses) // 5))
        self.metrics = {
            "train_pairs": len(pairs), "eval_pairs": len(eval_pairs), "steps": steps,
            "train_seconds": round(time.time() - started, 1), "trainer": "trl.RewardTrainer",
            "loss_first": sum(losses[:window]) / window if losses else None,
            "loss_last": sum(losses[-window:]) / window if losses else None,
            "losses": [round(x, 4) for x in losses], "held_out_accuracy": held,
            "evaluations": [{"step": steps, "held_out_accuracy": held}] if held is not None else [],
            "train": config.model_dump(mode="json"),
        }
        return self.metrics
