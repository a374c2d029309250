"""A loopback OpenAI-compatible server with a fixed capacity and fault injection, for tests and benchmarks.

Test your own pipeline against it before spending GPU hours:

    from synthloop.testing.openai_server import Faults, OpenAIServer

    with OpenAIServer(slots=64, latency_s=0.1, faults=Faults(http_500=0.1, hang=0.05)) as server:
        engine = synthloop.engines.load("openai", model=server.model, base_url=server.base_url)
        ...
        print(server.stats())            # requests, faults injected, peak slots in use

    python -m synthloop.testing.openai_server --slots 64 --latency 0.1 --port 8000   # from the shell

Capacity: `slots` requests are served at once, each for `latency_s` seconds (64 x 100 ms => 640 req/s);
more wait in line, as on a real server. It answers `/v1/chat/completions` with `n` choices (or only one
with `honour_n=False`, like servers that ignore `n`), seeded text, token `usage` and `finish_reason`;
`response_format` json_schema gets a JSON value valid against the schema, and DSPy's ChatAdapter and
JSONAdapter prompts get their own format, so unmodified DSPy programs parse its answers.

Faults: random HTTP 500s, hangs (never answered; the client must time out), malformed bodies (cut-off
JSON, or JSON without `choices`), and 429s with `Retry-After` (in bursts: every request inside a time
window, or the first N requests). A message can also ask for its own fault: `[[fault:400]]`
(permanent), `[[fault:500]]` (always), `[[fault:hang]]`, `[[fault:garbage]]` (a 200 whose content
ignores the requested format).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import random
import re
import subprocess
import sys
import threading
import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from synthloop.testing.fake_completions import completion

_DIRECTIVE = re.compile(r"\[\[fault:(400|500|hang|garbage)\]\]")


class Faults(BaseModel):
    """What goes wrong, and how often (probabilities per request)."""

    model_config = ConfigDict(extra="forbid")

    http_500: float = Field(0.0, ge=0, le=1, description="Share of requests answered with HTTP 500.")
    hang: float = Field(0.0, ge=0, le=1, description="Share of requests never answered (until hang_s).")
    malformed: float = Field(0.0, ge=0, le=1, description="Share answered 200 with a malformed body.")
    rate_limit_every_s: float | None = Field(None, gt=0, description="A 429 burst starts every this many seconds.")
    rate_limit_burst_s: float = Field(0.5, ge=0, description="How long each 429 burst lasts.")
    rate_limit_first: int = Field(0, ge=0, description="The first this many requests are refused with 429.")
    retry_after_s: float | None = Field(0.2, ge=0, description="Retry-After sent with 429s (None: no header).")
    hang_s: float = Field(3600.0, gt=0, description="How long a hung request stays unanswered.")
    seed: int = 0


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: int = Field(64, ge=1, description="Requests served at once.")
    latency_s: float = Field(0.1, ge=0, description="Seconds each request holds its slot.")
    model: str = "fake-model"
    honour_n: bool = Field(True, description="Return n choices; False answers one, like servers that ignore n.")
    api_key: str | None = Field(None, description="If set, requests must carry `Authorization: Bearer <key>`.")
    faults: Faults = Faults()


class _State:
    def __init__(self, config: ServerConfig):
        self.config = config
        # when each slot is next free, on the loop's clock: a slot's requests are served back to back on this
        # schedule, so late timer wakeups (~1-3 ms each here) do not eat into the capacity
        self.free_at = [0.0] * config.slots
        self.rng = random.Random(config.faults.seed)
        self.started = time.monotonic()
        self.stats: dict[str, Any] = {"requests": 0, "completed": 0, "choices": 0, "in_flight": 0, "max_in_flight": 0,
                                      "waiting": 0, "max_waiting": 0, "status": {}, "faults": {}, "auth_headers": []}

    async def serve(self) -> None:
        """Hold the earliest free slot for `latency_s` (waiting for it first, in arrival order)."""
        now = asyncio.get_running_loop().time()
        start = max(now, heapq.heappop(self.free_at))
        finish = start + self.config.latency_s
        heapq.heappush(self.free_at, finish)
        stats = self.stats
        waiting = start > now
        stats["waiting"] += waiting
        stats["max_waiting"] = max(stats["max_waiting"], stats["waiting"])
        try:
            if waiting:
                await asyncio.sleep(start - now)
            stats["waiting"] -= waiting
            waiting = False
            stats["in_flight"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
            try:
                await asyncio.sleep(max(0.0, finish - asyncio.get_running_loop().time()))
            finally:
                stats["in_flight"] -= 1
        finally:
            stats["waiting"] -= waiting

    def count(self, group: str, key: str) -> None:
        self.stats[group][key] = self.stats[group].get(key, 0) + 1

    def in_burst(self) -> bool:
        f = self.config.faults
        if f.rate_limit_every_s is None:
            return False
        return (time.monotonic() - self.started) % f.rate_limit_every_s < f.rate_limit_burst_s


def _reply(status: int, state: _State, body: Any = None, *, text: str | None = None, headers=None) -> web.Response:
    state.count("status", str(status))
    if text is not None:
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)
    return web.json_response(body, status=status, headers=headers, dumps=json.dumps)


def _error(status: int, state: _State, message: str, kind: str, headers=None) -> web.Response:
    return _reply(status, state, {"error": {"message": message, "type": kind, "code": status}}, headers=headers)


async def _chat(request: web.Request) -> web.StreamResponse:
    state: _State = request.app[_STATE]
    config, faults = state.config, state.config.faults
    state.stats["requests"] += 1
    number = state.stats["requests"]
    auth = request.headers.get("Authorization")
    state.stats["auth_headers"] = sorted({*state.stats["auth_headers"], auth or ""})[:8]
    if config.api_key is not None and auth != f"Bearer {config.api_key}":
        return _error(401, state, "invalid API key", "authentication_error")
    try:
        body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, state, "the body is not JSON", "invalid_request_error")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, state, "messages: a non-empty list is required", "invalid_request_error")
    found = _DIRECTIVE.search(str(messages[-1].get("content", "")))
    directive = found.group(1) if found else None
    if directive == "400":
        state.count("faults", "directed_400")
        return _error(400, state, "this request asked to be refused ([[fault:400]])", "invalid_request_error")
    if directive == "500":
        state.count("faults", "directed_500")
        return _error(500, state, "this request asked to fail ([[fault:500]])", "server_error")
    if state.in_burst() or number <= faults.rate_limit_first:
        state.count("faults", "rate_limited")
        headers = {"Retry-After": f"{faults.retry_after_s:g}"} if faults.retry_after_s is not None else None
        return _error(429, state, "rate limit reached, slow down", "rate_limit_error", headers=headers)
    roll = state.rng.random()
    if directive == "hang" or roll < faults.hang:
        state.count("faults", "hang")
        await asyncio.sleep(faults.hang_s)
        return _error(504, state, "hung request released", "timeout")
    roll -= faults.hang
    if roll < faults.http_500:
        state.count("faults", "http_500")
        return _error(500, state, "internal error (injected)", "server_error")
    roll -= faults.http_500
    malformed = roll < faults.malformed
    await state.serve()
    if malformed:
        state.count("faults", "malformed")
        if number % 2:
            return _reply(200, state, text='{"id": "chatcmpl-x", "choices": [{"index": 0, "message": {"role": "assi')
        return _reply(200, state, {"id": f"chatcmpl-{number}", "object": "chat.completion", "detail": "no choices"})
    response = completion(body, model=config.model, honour_n=config.honour_n, number=number,
                          garbage=directive == "garbage")
    state.stats["completed"] += 1
    state.stats["choices"] += len(response["choices"])
    return _reply(200, state, response)


async def _models(request: web.Request) -> web.Response:
    state: _State = request.app[_STATE]
    return web.json_response({"object": "list", "data": [{"id": state.config.model, "object": "model"}]})


async def _stats(request: web.Request) -> web.Response:
    state: _State = request.app[_STATE]
    return web.json_response({**state.stats, "uptime_s": round(time.monotonic() - state.started, 3)})


_STATE = web.AppKey("state", _State)


def build_app(config: ServerConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_STATE] = _State(config)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/stats", _stats)
    return app


async def _start(config: ServerConfig, host: str, port: int) -> tuple[web.AppRunner, int]:
    # handler_cancellation: a request the client gave up on (a hang past its timeout) stops at once
    runner = web.AppRunner(build_app(config), access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    # a deep accept queue: bursts of hundreds of new connections must not be reset
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


class OpenAIServer:
    """The server on a free loopback port, in a background thread (`process=False`) or in its own process
    (`process=True`, for benchmarks: the server then does not share the client's interpreter lock)."""

    def __init__(self, config: ServerConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 process: bool = False, **fields: Any):
        self.config = config or ServerConfig(**fields)
        self.host, self.port, self.process = host, port, process
        self._proc: subprocess.Popen | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def model(self) -> str:
        return self.config.model

    def start(self) -> OpenAIServer:
        if self.process:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "synthloop.testing.openai_server", "--host", self.host, "--port",
                 str(self.port), "--config-json", self.config.model_dump_json()],
                stdout=subprocess.PIPE, text=True)
            line = self._proc.stdout.readline()
            if not line.startswith("listening on "):
                self._proc.kill()
                raise RuntimeError(f"the fake OpenAI server did not start: {line!r}")
            self.port = int(line.rsplit(":", 1)[1].split("/")[0])
            return self
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._runner, self.port = self._loop.run_until_complete(_start(self.config, self.host, self.port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the fake OpenAI server did not start within 30 s")
        return self

    def stats(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"http://{self.host}:{self.port}/stats", timeout=10).json()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--slots", type=int, default=64, help="requests served at once")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds each request holds its slot")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--ignore-n", action="store_true", help="answer one choice whatever n asks")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument("--faults", default="{}", help='JSON, e.g. {"http_500": 0.1, "hang": 0.05}')
    parser.add_argument("--config-json", default=None, help="a whole ServerConfig as JSON (overrides the rest)")
    args = parser.parse_args(argv)
    if args.config_json:
        config = ServerConfig.model_validate_json(args.config_json)
    else:
        config = ServerConfig(slots=args.slots, latency_s=args.latency, model=args.model, honour_n=not args.ignore_n,
                              api_key=args.api_key, faults=Faults.model_validate_json(args.faults))

    async def serve() -> None:
        runner, port = await _start(config, args.host, args.port)
        print(f"listening on http://{args.host}:{port}/v1", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
