"""What goes into an engine and what comes out: chat requests in, completions with token counts out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

FinishReason = Literal["stop", "length", "error"]


class Sampling(BaseModel):
    """Sampling parameters of one request (the same names as vLLM and the OpenAI API)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Softmax temperature; 0 is greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(256, ge=1, description="Most tokens generated per completion.")
    n: int = Field(1, ge=1, description="Completions per request.")
    seed: int | None = Field(None, description="Sampling seed; the same request and seed give the same output.")
    stop: tuple[str, ...] = Field((), description="Strings that end a completion.")


def sampling_config(description: str, *, keys: Collection[str] = ("temperature", "top_p", "max_tokens", "stop"),
                    **defaults: Any) -> Any:
    """A config field typed as `Sampling`, with this context's defaults (a loop samples at 0.8, evaluates greedily)
    and only the keys that mean something here (a run's seed is the run's, not the section's):

        sampling: sampling_config("How answers are sampled.", keys=("n", "temperature"), n=8, temperature=0.8)

    A YAML section sets any of `keys`; the others keep the defaults. The value is the engine's own `Sampling`,
    handed to the engine as it is."""
    default = Sampling(**defaults)
    allowed = set(keys)

    def merge(value: Any) -> Any:
        if isinstance(value, Sampling) or not isinstance(value, dict):
            return value
        elsewhere = sorted((set(value) & set(Sampling.model_fields)) - allowed)
        if elsewhere:
            raise ValueError(f"{elsewhere[0]} is not set in this section (it sets: {', '.join(sorted(allowed))})")
        return {**default.model_dump(), **value}  # an unknown key fails in Sampling itself (extra keys forbidden)

    return Annotated[Sampling, BeforeValidator(merge), Field(default=default, description=description)]


class ChatRequest(BaseModel):
    """One chat request. `sample_index` tells apart requests that are otherwise identical on purpose
    (e.g. the retry of an unparseable answer), so they get their own seed and their own cache entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[dict[str, str], ...]
    sampling: Sampling = Sampling()
    json_schema: dict[str, Any] | None = None
    sample_index: int = 0

    def canonical(self, model: str) -> dict[str, Any]:
        """Everything that determines the output, and nothing else (never credentials)."""
        return {
            "model": model,
            "messages": [dict(m) for m in self.messages],
            "sampling": self.sampling.model_dump(),
            "json_schema": self.json_schema,
            "sample_index": self.sample_index,
        }

    def cache_key(self, model: str) -> str:
        canonical = self.canonical(model)
        try:  # orjson writes the same bytes as the json call below, ~10x faster (a hot path at 600 req/s)
            blob = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


class Completion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    finish_reason: FinishReason
    output_tokens: int


class ChatResult(BaseModel):
    """The `n` completions of one request."""

    model_config = ConfigDict(extra="forbid")

    completions: list[Completion]
    prompt_tokens: int
    cached: bool = False

    @property
    def text(self) -> str:
        return self.completions[0].text

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.completions)


class ScoreRequest(BaseModel):
    """Score a continuation: the log-probability the model gives `continuation` after a context.

    The context is either raw text (`context`, for plain language-model scoring, e.g. a latent thought
    before its document) or chat `messages` (rendered with the chat template and the assistant turn
    opened, so `continuation` is scored as the assistant's reply). Exactly one of the two is set; an
    empty raw context scores the continuation from the start of a text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    continuation: str = Field(min_length=1)
    context: str | None = None
    messages: tuple[dict[str, str], ...] | None = None

    def model_post_init(self, _: Any) -> None:
        if (self.context is None) == (self.messages is None):
            raise ValueError("a ScoreRequest takes exactly one of context= (raw text) or messages= (chat)")

    def canonical(self, model: str) -> dict[str, Any]:
        return {
            "kind": "loglikelihood",
            "model": model,
            "context": self.context,
            "messages": None if self.messages is None else [dict(m) for m in self.messages],
            "continuation": self.continuation,
        }

    def cache_key(self, model: str) -> str:
        blob = json.dumps(self.canonical(model), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class ScoreResult(BaseModel):
    """Log-probabilities (natural log) of the continuation's tokens, each given everything before it."""

    model_config = ConfigDict(extra="forbid")

    token_logprobs: list[float]
    context_tokens: int
    cached: bool = False

    @property
    def logprob(self) -> float:
        """Summed log-probability of the continuation: log p(continuation | context)."""
        return float(sum(self.token_logprobs))

    @property
    def tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def mean_logprob(self) -> float:
        """Per-token average (comparable across continuations of different lengths)."""
        return self.logprob / max(1, self.tokens)


class EngineError(RuntimeError):
    """A request failed. `transient` errors (timeouts, overload, 5xx) are worth retrying."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class PromptTooLongError(EngineError):
    """The prompt does not fit the model's context (max_model_len); retrying cannot help."""
