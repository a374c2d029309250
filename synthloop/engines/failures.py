"""What went wrong in one attempt at an item, and whether a fresh attempt can help: the runner retries an
unparseable or truncated output with a new sample, a transient engine error after a backoff, and gives up at once
on the rest. Programs that call the model several times per item (latent thoughts) and compiling use the same rule."""

from __future__ import annotations

import dspy

from synthloop.engines.dspy_bridge import TruncatedOutputError
from synthloop.engines.types import EngineError, PromptTooLongError


def classify_failure(exc: BaseException) -> tuple[str, bool, bool]:
    """(kind, retry with a new sample?, transient?) for an exception raised while running an item."""
    seen: BaseException | None = exc
    for _ in range(10):  # follow the chain DSPy wraps engine errors in
        if seen is None:
            break
        if isinstance(seen, TruncatedOutputError):
            return "truncated", True, False
        if isinstance(seen, dspy.utils.exceptions.AdapterParseError):
            return "unparseable", True, False
        if isinstance(seen, PromptTooLongError):
            return "prompt_too_long", False, False
        if isinstance(seen, EngineError):
            return ("transient" if seen.transient else "engine"), seen.transient, seen.transient
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__, False, False
