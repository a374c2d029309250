"""The DSPy bridge: a `dspy.LM` whose every call goes into a synthloop engine.

DSPy 3.4 takes custom engines as objects with `complete(lm15.Request) -> lm15.Response`
(`dspy.LM(engine=..., async_engine=...)`). The bridge declares response-schema support, so DSPy's
JSONAdapter sends each signature's output schema, which the engine enforces by constrained decoding
(bounded by `json_schema.bound_schema` so it always closes): small models then return parseable
fields on every call. Calls from many threads or tasks reach the engine concurrently, where they
are batched; `synthloop.synth.generate` runs a program over a dataset that way.

Plain chat calls (what DSPy's adapters make) take a fast path straight into the engine (`EngineLM`):
DSPy 3.4's own call path costs ~0.5 ms of CPU per call (two thread-pool hops, request normalisation,
price lookups), measured as a third of the client's time against a 640 req/s server. Anything else
(explicit lm15 requests, tools, streaming, callbacks) goes through DSPy's path and the engine objects.
"""

from __future__ import annotations

import datetime
import uuid
import weakref
from typing import Any

import dspy
import pydantic
from dspy.clients.legacy_requests import _strict_json_schema
from dspy.dsp.utils.settings import settings
from dspy.lm15 import Message, Request, Response, TextPart, Usage

from synthloop.engines import sample_context
from synthloop.engines.base import Engine
from synthloop.engines.json_schema import bound_schema
from synthloop.engines.types import ChatRequest, ChatResult, EngineError, Sampling


class TruncatedOutputError(EngineError):
    """The completion hit max_tokens: its fields would be cut off, so it counts as unparseable."""


def _messages(request: Request) -> tuple[dict[str, str], ...]:
    out = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        out.append({"role": "system", "content": system})
    for m in request.messages:
        out.append({"role": m.role, "content": m.text or ""})
    return tuple(out)


class _Translator:
    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = frozenset({"temperature", "max_tokens", "top_p", "stop", "seed", "response_format"})

    def __init__(self, engine: Engine, *, defaults: Sampling, json_max_chars: int | None, reject_truncated: bool):
        self.engine = engine
        self.defaults = defaults
        self.json_max_chars = json_max_chars
        self.reject_truncated = reject_truncated

    def _sampling(self, seed: int | None, **given: Any) -> Sampling:
        """The run's `Sampling` with what this call sets itself (DSPy's per-call config, an optimizer's `n`);
        the seed is the call's own, else the item's (runner), else the defaults'."""
        if seed is None:
            ctx = sample_context.current()
            seed = ctx.seed if ctx else self.defaults.seed
        update = {k: v for k, v in given.items() if v is not None}
        if "stop" in update:
            stop = update["stop"]
            update["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
            if not update["stop"]:
                del update["stop"]
        return self.defaults.model_copy(update={**update, "seed": seed})

    @staticmethod
    def _sample_index() -> int:
        ctx = sample_context.current()
        return ctx.attempt if ctx else 0

    def chat_request(self, request: Request) -> ChatRequest:
        c = request.config
        sampling = self._sampling(c.seed, temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_tokens or None,
                                  stop=c.stop or None)
        schema = None
        fmt = c.response_format
        if fmt and fmt.get("type") == "json_schema" and self.engine.supports_json_schema:
            schema = bound_schema(fmt["schema"], sampling.max_tokens, self.json_max_chars)
        return ChatRequest(messages=_messages(request), sampling=sampling, json_schema=schema,
                           sample_index=self._sample_index())

    def chat_request_from_kwargs(self, messages: list[dict[str, Any]], kw: dict[str, Any]) -> ChatRequest:
        """The same request as `chat_request`, from an OpenAI-style call (the fast path)."""
        seed = kw.get("seed")
        rollout = kw.get("rollout_id")
        if rollout is not None:  # DSPy asks for distinct samples with rollout ids
            base = self._sampling(seed).seed
            if base is not None:
                seed = sample_context.derive_seed(base, 0, int(rollout) if isinstance(rollout, int) else hash(rollout))
        sampling = self._sampling(seed, temperature=kw.get("temperature"), top_p=kw.get("top_p"),
                                  max_tokens=kw.get("max_tokens") or kw.get("max_completion_tokens"),
                                  n=kw.get("n"), stop=kw.get("stop"))
        schema = None
        if self.engine.supports_json_schema:
            schema = self._schema(kw.get("response_format"), sampling.max_tokens)
        return ChatRequest(messages=tuple(messages), sampling=sampling, json_schema=schema,
                           sample_index=self._sample_index())

    _schemas: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _schema(self, fmt: Any, max_tokens: int) -> dict[str, Any] | None:
        if isinstance(fmt, type) and issubclass(fmt, pydantic.BaseModel):
            per_model = self._schemas.setdefault(fmt, {})
            key = (max_tokens, self.json_max_chars)
            if key not in per_model:  # the same schema DSPy's own path sends (strict shape), then bounded
                per_model[key] = bound_schema(_strict_json_schema(fmt.model_json_schema()), max_tokens,
                                              self.json_max_chars)
            return per_model[key]
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            inner = fmt.get("json_schema", fmt)
            schema = inner.get("schema") if isinstance(inner, dict) else None
            return bound_schema(schema, max_tokens, self.json_max_chars) if schema else None
        return None

    def outputs(self, result: ChatResult, max_tokens: int) -> list[str]:
        """The texts DSPy's adapters parse; truncated completions are errors (or dropped, if others are whole)."""
        whole = [c.text for c in result.completions if not (self.reject_truncated and c.finish_reason == "length")]
        if not whole:
            raise TruncatedOutputError(f"output cut off at max_tokens={max_tokens}")
        return whole

    def response(self, request: Request, result: ChatResult) -> Response:
        completion = result.completions[0]
        if self.reject_truncated and completion.finish_reason == "length":
            raise TruncatedOutputError(
                f"output cut off at max_tokens={request.config.max_tokens or self.defaults.max_tokens}"
            )
        return Response(
            id=None,
            model=request.model,
            message=Message.assistant([TextPart(completion.text)]),
            finish_reason="length" if completion.finish_reason == "length" else "stop",
            usage=Usage(input_tokens=result.prompt_tokens, output_tokens=completion.output_tokens),
        )


class BridgeEngine(_Translator):
    """DSPy's sync engine: blocks the calling thread, not the engine."""

    def complete(self, request: Request) -> Response:
        return self.response(request, self.engine.submit(self.chat_request(request)).result())

    def stream(self, request: Request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


class AsyncBridgeEngine(_Translator):
    """DSPy's async engine: awaits the engine's future on the caller's event loop."""

    async def complete(self, request: Request) -> Response:
        return self.response(request, await self.engine.agenerate(self.chat_request(request)))

    async def stream(self, request: Request):
        from dspy.lm15 import response_to_events

        for event in response_to_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        pass


class EngineLM(dspy.LM):
    """A `dspy.LM` whose plain chat calls go straight into the engine (see the module docstring)."""

    def __init__(self, *, translator: _Translator, **kwargs: Any):
        super().__init__(**kwargs)
        self._translator = translator

    def _direct(self, prompt, messages, kwargs) -> tuple[ChatRequest, dict[str, Any]] | None:
        if prompt is not None or not isinstance(messages, list) or settings.send_stream is not None:
            return None
        if self.callbacks or settings.get("callbacks"):
            return None
        kw = {**self.kwargs, **kwargs}
        if kw.get("tools") or kw.get("logprobs") or any(not isinstance(m.get("content"), str) for m in messages):
            return None
        return self._translator.chat_request_from_kwargs(messages, kw), kw

    def _finish(self, messages, kw: dict[str, Any], request: ChatRequest, result: ChatResult) -> list[str]:
        outputs = self._translator.outputs(result, request.sampling.max_tokens)
        usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.output_tokens,
                 "total_tokens": result.prompt_tokens + result.output_tokens}
        if settings.usage_tracker and not result.cached:
            settings.usage_tracker.add_usage(self.model, usage)
        if not settings.disable_history:
            self.update_history({
                "prompt": None, "messages": messages, "kwargs": {k: v for k, v in kw.items() if k != "api_key"},
                "response": None, "outputs": outputs, "usage": usage, "cost": None,
                "timestamp": datetime.datetime.now().isoformat(), "uuid": str(uuid.uuid4()), "model": self.model,
                "response_model": self.model, "model_type": self.model_type})
        return outputs

    def __call__(self, prompt=None, messages=None, **kwargs):
        direct = self._direct(prompt, messages, kwargs)
        if direct is None:
            return super().__call__(prompt, messages=messages, **kwargs)
        request, kw = direct
        result = self._translator.engine.submit(request).result()
        return self._finish(messages, kw, request, result)

    async def acall(self, prompt=None, messages=None, **kwargs):
        direct = self._direct(prompt, messages, kwargs)
        if direct is None:
            return await super().acall(prompt, messages=messages, **kwargs)
        request, kw = direct
        result = await self._translator.engine.agenerate(request)
        return self._finish(messages, kw, request, result)


def dspy_lm(engine: Engine, sampling: Sampling | None = None, *, json_max_chars: int | None = None,
            reject_truncated: bool = True, **kwargs: Any) -> dspy.LM:
    """A `dspy.LM` backed by `engine`, sampling with `sampling` unless a call sets its own values. DSPy's own
    cache and retries are off: runs have a request cache on disk and retry with fresh samples themselves."""
    options = dict(defaults=sampling or Sampling(), json_max_chars=json_max_chars, reject_truncated=reject_truncated)
    return EngineLM(
        translator=_Translator(engine, **options),
        model=f"synthloop/{engine.model}",
        engine=BridgeEngine(engine, **options),
        async_engine=AsyncBridgeEngine(engine, **options),
        cache=False,
        num_retries=0,
        **kwargs,
    )


def current_engine(lm: dspy.LM | None = None) -> Engine:
    """The synthloop engine behind `lm` (default: DSPy's configured LM), for programs that also score
    log-likelihoods. Inside `synthloop.generate` this is the run's cached engine, so scores are cached too."""
    lm = lm if lm is not None else dspy.settings.lm
    bridge = getattr(lm, "engine", None)
    engine = getattr(bridge, "engine", None)
    if not isinstance(engine, Engine):
        raise EngineError(
            "this program needs a synthloop engine behind DSPy's LM: "
            "dspy.configure(lm=synthloop.engines.dspy_bridge.dspy_lm(engine)) or run it with synthloop.generate"
        )
    return engine
