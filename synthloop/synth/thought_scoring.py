"""Scoring latent thoughts by how well they explain a document: the E-step of BoLT's EM, reusable by loops.

For a document X and sampled thoughts Z_1..Z_N, with the thought-augmented text written as
`template.format(thought=Z, document=X)` (the document always last), one batch of engine scoring calls gives:

  logp_document                 log p(X)              the document alone (a baseline)
  logp_document_given_thought   log p(X | Z)          the document after the thought, in the training format
  logp_thought                  log p(Z)              the thought part of the augmented text, from its start
  logq_thought                  log q(Z | X)          the thought as the model's reply to the proposal prompt
  log_weight                    log p(Z) + log p(X | Z) - log q(Z | X)    BoLT's importance weight (unnormalized)

Approximation (stated, not hidden): thoughts are sampled through DSPy with constrained JSON decoding and a
temperature, while q is scored as a plain chat reply to `proposal_messages(X)`, so q is the model's density
under that prompt, not the exact sampling density.

    results = score_thoughts(engine, [(doc, [z1, z2, z3]), ...])    # everything in one batch
    best = max(results[0].candidates, key=lambda c: c.logp_document_given_thought)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from pydantic import BaseModel

from synthloop.engines.base import Engine
from synthloop.engines.types import ScoreRequest, ScoreResult
from synthloop.prompts.latent_thoughts import InferLatentThought

DEFAULT_TEMPLATE = "<thought>\n{thought}\n</thought>\n{document}"


class ThoughtScore(BaseModel):
    thought: str
    logp_document_given_thought: float
    logp_thought: float
    logq_thought: float
    thought_tokens: int

    @property
    def log_weight(self) -> float:
        return self.logp_thought + self.logp_document_given_thought - self.logq_thought


class DocumentScores(BaseModel):
    logp_document: float
    document_tokens: int
    candidates: list[ThoughtScore]


def check_template(template: str) -> str:
    if template.count("{thought}") != 1 or template.count("{document}") != 1 or not template.endswith("{document}"):
        raise ValueError("the template needs one {thought} and one {document}, with {document} at the end")
    return template


def augmented_text(document: str, thought: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The thought-augmented training document."""
    return template.replace("{thought}", thought).replace("{document}", document)


def thought_prefix(thought: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The augmented text up to where the document starts: the context of log p(X | Z)."""
    return template.split("{document}")[0].replace("{thought}", thought)


def proposal_messages(document: str) -> tuple[dict[str, str], ...]:
    """The prompt whose reply density is q(Z | X)."""
    instructions = " ".join(InferLatentThought.__doc__.split())
    return ({"role": "user", "content": f"{instructions}\n\nDocument:\n{document}"},)


def requests_for(document: str, thoughts: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[ScoreRequest]:
    """[p(X)] + [p(X|Z_k), p(Z_k), q(Z_k|X)] per thought, in that order."""
    out = [ScoreRequest(context="", continuation=document)]
    for thought in thoughts:
        prefix = thought_prefix(thought, template)
        out += [
            ScoreRequest(context=prefix, continuation=document),
            ScoreRequest(context="", continuation=prefix.rstrip()),  # its trailing whitespace goes with X
            ScoreRequest(messages=proposal_messages(document), continuation=thought),
        ]
    return out


def assemble(thoughts: Sequence[str], results: Sequence[ScoreResult]) -> DocumentScores:
    base, rest = results[0], results[1:]
    candidates = [
        ThoughtScore(thought=t, logp_document_given_thought=rest[3 * i].logprob, logp_thought=rest[3 * i + 1].logprob,
                     logq_thought=rest[3 * i + 2].logprob, thought_tokens=rest[3 * i + 2].tokens)
        for i, t in enumerate(thoughts)
    ]
    return DocumentScores(logp_document=base.logprob, document_tokens=base.tokens, candidates=candidates)


def score_thoughts(engine: Engine, items: Sequence[tuple[str, Sequence[str]]], *, template: str = DEFAULT_TEMPLATE,
                   progress: str | None = None) -> list[DocumentScores]:
    """Score many (document, thoughts) at once: every request is queued before any is awaited."""
    check_template(template)
    per_item = [requests_for(doc, thoughts, template) for doc, thoughts in items]
    flat = engine.loglikelihood([r for reqs in per_item for r in reqs], progress=progress)
    out, start = [], 0
    for (_, thoughts), reqs in zip(items, per_item, strict=True):
        out.append(assemble(thoughts, flat[start:start + len(reqs)]))
        start += len(reqs)
    return out


async def ascore_thoughts(engine: Engine, document: str, thoughts: Sequence[str], *,
                          template: str = DEFAULT_TEMPLATE) -> DocumentScores:
    results = await asyncio.gather(*[engine.ascore(r) for r in requests_for(document, thoughts, template)])
    return assemble(thoughts, results)


def normalized_weights(log_weights: Sequence[float | None]) -> list[float]:
    """Self-normalized importance weights (softmax); None (an ineligible thought) gets weight 0."""
    live = [w for w in log_weights if w is not None]
    if not live:
        return [0.0 for _ in log_weights]
    top = max(live)
    exp = [0.0 if w is None else math.exp(w - top) for w in log_weights]
    total = sum(exp)
    return [e / total for e in exp]
