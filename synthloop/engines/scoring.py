"""Tokenizing a (context, continuation) pair for log-likelihood scoring, the same way on every engine.

The rule is lm-evaluation-harness's: whitespace at the end of the context moves to the continuation,
the whole text is encoded once, and the continuation is what follows the context's own tokens (so a
word split across the boundary is not tokenized differently from how the model saw it in training).
Raw text starts with whatever the tokenizer puts before a text (e.g. Llama's BOS); if that is
nothing and the context is empty, the first continuation token is scored after the EOS token, as
lm-evaluation-harness does.
"""

from __future__ import annotations

from synthloop.engines.types import ScoreRequest


def context_text(tokenizer, request: ScoreRequest) -> str:
    if request.messages is not None:
        return tokenizer.apply_chat_template(list(request.messages), tokenize=False, add_generation_prompt=True)
    return request.context or ""


def encode_for_scoring(tokenizer, request: ScoreRequest) -> tuple[list[int], int]:
    """(token ids of context + continuation, number of context tokens); the continuation is ids[n:]."""
    context, continuation = context_text(tokenizer, request), request.continuation
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    prefix = [] if request.messages is not None else _text_prefix(tokenizer)
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    ctx = tokenizer.encode(context, add_special_tokens=False) if context else []
    cont = whole[len(ctx):]
    ctx = prefix + ctx
    if not ctx:
        ctx = [tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id]
    if not cont:
        raise ValueError("the continuation encodes to no tokens")
    return ctx + cont, len(ctx)


def _text_prefix(tokenizer) -> list[int]:
    """What the tokenizer puts before any text by default (BOS for Llama-2/3 style, nothing for ChatML)."""
    cached = getattr(tokenizer, "_synthloop_text_prefix", None)
    if cached is None:
        cached = list(tokenizer.encode("", add_special_tokens=True))
        tokenizer._synthloop_text_prefix = cached
    return list(cached)
