"""TRL trainers for objectives on whole sequences that TRL lacks: REDI and TOPR learn from incorrect answers too.

Both are `trl.SFTTrainer` subclasses: TRL tokenizes the (prompt, completion) rows with the model's chat template,
masks the prompt, and its fused LM head returns each completion token's log-probability; the subclasses only turn
per-sequence log-likelihoods into a loss (`compute_loss`). Extra per-row values (a sign, a reward, a behaviour
log-probability) ride along the batch as float tensors.

REDI, Reinforcement Distillation (Xu et al. 2025, "Harnessing Negative Signals: Reinforcement Distillation from
Teacher Data for LLM Reasoning", arXiv:2505.24850, eq. for L_REDI; their `reinforce` loss in the released code):

    L_REDI(theta) = E_(x, y_w, y_l) [ -log pi_theta(y_w|x) / |y_w|  +  alpha * log pi_theta(y_l|x) / |y_l| ]

reference-free, each sequence's log-likelihood normalized by its token count, the negative term down-weighted by
alpha in [0, 1] (0.8 in the paper). Used after an SFT stage on the positive answers. The reduction is the released
code's (`loss_type="reinforce"` in their dpo2_trainer.py, coefficients 1.0 and 0.8): a mean over pairs of the two
terms' sum. Here a pair is two rows, so the loss is 2 x the mean over a batch's rows (exact when a batch holds whole
pairs; the same objective in expectation when shuffling splits them).

TOPR, Tapered Off-Policy REINFORCE (Le Roux, Bellemare et al. 2025, arXiv:2503.14286, eq. 6):

    grad J_TOPR(pi) = sum_{tau: R(tau) >= 0} mu(tau) R(tau) grad log pi(tau)
                    + sum_{tau: R(tau) <  0} mu(tau) [pi(tau) / mu(tau)]_0^1 R(tau) grad log pi(tau)

with samples tau drawn from a behaviour policy mu (here: the policy that sampled the round) and [.]_0^1 clipping to
[0, 1]: positive samples get the plain SFT-like update, negative samples a truncated importance-weighted one (the
ratio of whole-sequence probabilities, without gradient), which keeps the objective bounded. As a loss over a
dataset drawn from mu: mean_i [ -w_i * R_i * log pi(tau_i) ], w_i = 1 if R_i >= 0 else min(1, pi(tau_i)/mu(tau_i)).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader
from trl import SFTTrainer
from trl.trainer.utils import selective_log_softmax


class _RowValues:
    """Wraps TRL's collator: the batch also carries the named per-row numbers as float tensors."""

    def __init__(self, inner, columns: tuple[str, ...]):
        self.inner, self.columns = inner, columns

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        for column in self.columns:
            batch[column] = torch.tensor([float(e[column]) for e in examples], dtype=torch.float32)
        return batch


class SequenceObjectiveTrainer(SFTTrainer):
    """An SFTTrainer whose loss is a mean over sequences of `sequence_losses(logps, lengths, values)`, where `logps`
    is each completion's summed token log-probability and `values` the batch's `row_columns`."""

    row_columns: ClassVar[tuple[str, ...]] = ()
    # the loss is a mean over this micro-batch's sequences: Trainer divides it by the accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.args.packing or self.padding_free:
            raise ValueError(f"{type(self).__name__}: sequence-level losses need one sequence per row "
                             "(packing and padding_free must be off)")
        self.data_collator = _RowValues(self.data_collator, self.row_columns)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = [*self._signature_columns, *self.row_columns]

    def sequence_losses(self, logps: torch.Tensor, lengths: torch.Tensor,
                        values: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-sequence losses (shape [batch]) and metrics to log (batch means)."""
        raise NotImplementedError

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        values = {column: inputs.pop(column) for column in self.row_columns}
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        mask = outputs.label_mask
        logps = outputs.log_probs.sum(dim=-1)  # zero on the prompt and padding
        lengths = mask.sum(dim=-1).clamp(min=1).to(logps.dtype)
        losses, metrics = self.sequence_losses(logps, lengths, values)
        for key, value in metrics.items():
            if value is not None and math.isfinite(value):
                self._metrics[mode][key].append(value)
        loss = losses.mean()
        return (loss, outputs) if return_outputs else loss


def _mean(values: torch.Tensor, where: torch.Tensor) -> float | None:
    return values[where].mean().item() if bool(where.any()) else None


class REDITrainer(SequenceObjectiveTrainer):
    """REDI's asymmetric, length-normalized, reference-free objective (see the module doc). Rows carry `sign`: +1 for a
    correct answer, -1 for an incorrect one; a pair is two rows, so a batch of B sequences is ~B/2 pairs."""

    row_columns = ("sign",)

    def __init__(self, *args, alpha: float = 0.8, **kwargs):
        self.alpha = alpha
        super().__init__(*args, **kwargs)

    def sequence_losses(self, logps, lengths, values):
        positive = values["sign"].to(logps.device) > 0
        normalized = logps / lengths  # log pi(y|x) / |y|
        weights = torch.where(positive, torch.ones_like(normalized), torch.full_like(normalized, -self.alpha))
        losses = -2.0 * weights * normalized  # 2 x mean over rows = mean over pairs of (positive + negative term)
        detached = normalized.detach()
        return losses, {"logps/positive": _mean(detached, positive), "logps/negative": _mean(detached, ~positive)}


class TOPRTrainer(SequenceObjectiveTrainer):
    """TOPR's tapered off-policy REINFORCE (see the module doc). Rows carry `reward` and `behavior_logp`, the
    completion's log-probability under the behaviour policy mu. Without a `behavior_logp` column it is computed once
    before training, with `behavior_model` (default: the policy as loaded, i.e. before any update) at
    `behavior_temperature`, over exactly the tokens the loss sees."""

    row_columns = ("reward", "behavior_logp")

    def __init__(self, *args, baseline: float = 0.0, length_normalize: bool = False, behavior_model=None,
                 behavior_temperature: float = 1.0, **kwargs):
        self.baseline, self.length_normalize = baseline, length_normalize
        super().__init__(*args, **kwargs)
        if "behavior_logp" not in self.train_dataset.column_names:
            logps = behavior_logps(behavior_model if behavior_model is not None else self.model,
                                   self.train_dataset, self.data_collator.inner, temperature=behavior_temperature,
                                   batch_size=self.args.per_device_train_batch_size, device=self.args.device)
            self.train_dataset = self.train_dataset.add_column("behavior_logp", logps)

    def sequence_losses(self, logps, lengths, values):
        reward = values["reward"].to(logps.device) - self.baseline
        behavior = values["behavior_logp"].to(logps.device)
        negative = reward < 0
        # [pi(tau) / mu(tau)]_0^1 on negatives (no gradient through the weight), 1 on positives
        ratio = torch.exp(logps.detach() - behavior).clamp(max=1.0)
        weights = torch.where(negative, ratio, torch.ones_like(ratio))
        objective = logps / lengths if self.length_normalize else logps
        losses = -weights * reward * objective
        per_token = (logps / lengths).detach()
        return losses, {"topr/negative_weight": _mean(ratio, negative),
                        "topr/positive_fraction": (~negative).float().mean().item(),
                        "logps/positive": _mean(per_token, ~negative), "logps/negative": _mean(per_token, negative)}


@torch.no_grad()
def behavior_logps(model, dataset, collator, *, temperature: float, batch_size: int, device) -> list[float]:
    """Each row's completion log-probability under `model` at `temperature` (the sampler's tempered distribution;
    temperature 0, greedy decoding, gives probability 1 to what was sampled). Rows are TRL-prepared (input_ids,
    labels with -100 on the prompt), so the tokens are exactly those the loss scores."""
    if temperature == 0:
        return [0.0] * len(dataset)
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        loader = DataLoader(dataset.select_columns(["input_ids", "labels"]), batch_size=batch_size,
                            collate_fn=collator, shuffle=False)
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits[:, :-1].float()
            labels = batch["labels"][:, 1:]
            mask = labels != -100
            token = selective_log_softmax(logits, labels.clamp(min=0), temperature=temperature)
            out += (token * mask).sum(dim=-1).tolist()
    finally:
        model.train(was_training)
    return out
