"""Held-out perplexity of documents under a checkpoint: the evaluation of loops that train on text (continued
pretraining, latent-thought EM) rather than on answers to verify.

For each held-out row (`prompt` = the document), through the engine's log-likelihood scoring:

  {prefix}eval_logprob                 mean log-probability per document token (corpus level: summed log-probs
                                       over summed tokens), the document alone; higher is better
  {prefix}eval_ppl                     exp(-eval_logprob)
  {prefix}eval_logprob_given_context   the same, with the row's `context_column` (e.g. the GSM8K question behind
  {prefix}eval_ppl_given_context       a worked solution) written before the document in `template` (default:
                                       the latent-thoughts format, `synthloop.synth.thought_scoring`)

Per-document scores go to `round-XXX/<stage name>.jsonl`.
"""

from __future__ import annotations

import math
from typing import Any

from synthloop.configs import ConfigError
from synthloop.engines.types import ScoreRequest
from synthloop.loops.context import RoundContext
from synthloop.loops.stages import Stage, eval_tasks
from synthloop.runs.jsonl import write_jsonl


def _summary(logprobs: list[float], tokens: list[int]) -> tuple[float | None, float | None]:
    total = sum(tokens)
    if not total:
        return None, None
    mean = sum(logprobs) / total
    return round(mean, 5), round(math.exp(-mean), 4)


class PerplexityStage(Stage):
    """Score the held-out documents with the checkpoint of `role`; metrics are written once per prefix (round 0
    evaluates the one starting model for every arm of a loop)."""

    uses_engine = True

    def __init__(self, *, name: str = "evaluate", role: str = "policy", prefixes: tuple[str, ...] = ("",),
                 context_column: str | None = None, template: str | None = None):
        self.name, self.role, self.prefixes = name, role, prefixes
        self.context_column, self.template = context_column, template

    def requests(self, rows: list[dict[str, Any]]) -> list[tuple[int, str, ScoreRequest]]:
        from synthloop.synth.thought_scoring import DEFAULT_TEMPLATE, thought_prefix  # imports DSPy: not at load

        template = self.template or DEFAULT_TEMPLATE
        out = []
        for i, row in enumerate(rows):
            document = str(row["prompt"])
            if not document.strip():
                continue
            out.append((i, "alone", ScoreRequest(context="", continuation=document)))
            if self.context_column is not None:
                if self.context_column not in row:
                    raise ConfigError(f"held-out row {i} has no column {self.context_column!r} (columns: "
                                      f"{', '.join(row)}); set recipe.eval_context to one of them, or null")
                prefix = thought_prefix(str(row[self.context_column]), template)
                out.append((i, "given_context", ScoreRequest(context=prefix, continuation=document)))
        return out

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        rows = eval_tasks(ctx)
        requests = self.requests(rows)
        engine = ctx.engine(self.role)
        results = engine.loglikelihood([r for _, _, r in requests],
                                       progress=f"score held-out ({self.role})" if ctx.progress else None)
        per_doc: dict[int, dict[str, Any]] = {}
        sums: dict[str, tuple[list[float], list[int]]] = {"alone": ([], []), "given_context": ([], [])}
        for (i, kind, _), result in zip(requests, results, strict=True):
            doc = per_doc.setdefault(i, {"task_id": rows[i].get("task_id", i)})
            doc[f"logprob_{kind}"] = round(result.logprob, 4)
            doc[f"tokens_{kind}"] = result.tokens
            sums[kind][0].append(result.logprob)
            sums[kind][1].append(result.tokens)
        path = ctx.dir / f"{self.name}.jsonl"
        write_jsonl(path, per_doc.values())
        logprob, ppl = _summary(*sums["alone"])
        figures: dict[str, Any] = {"eval_logprob": logprob, "eval_ppl": ppl, "eval_docs": len(per_doc)}
        if self.context_column is not None:
            logprob_c, ppl_c = _summary(*sums["given_context"])
            figures.update(eval_logprob_given_context=logprob_c, eval_ppl_given_context=ppl_c)
        metrics = {f"{p}{k}": v for p in self.prefixes for k, v in figures.items()}
        return {"path": str(path), "checkpoint": ctx.checkpoint(self.role), **figures, "metrics": metrics}
