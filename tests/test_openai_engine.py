"""The openai engine against a real loopback server (synthloop.testing.openai_server): faults, pushback,
n samples, schemas, errors. Seconds on 2 cores; no model needed."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from typing import Literal

import dspy
import pytest
from pydantic import BaseModel

from synthloop.engines import ChatRequest, EngineError, Sampling, load
from synthloop.synth.base import SynthProgram
from synthloop.synth.generate import generate
from synthloop.testing.openai_server import Faults, OpenAIServer


class Answer(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    confidence: float = dspy.OutputField()


class QAConfig(BaseModel):
    kind: Literal["qa"] = "qa"


class QA(SynthProgram):
    name = "qa"
    config_class = QAConfig

    def __init__(self):
        super().__init__()
        self.answer = dspy.Predict(Answer)

    async def aforward(self, question: str) -> dspy.Prediction:
        return await self.answer.acall(question=question)


def _ask(text: str, **sampling) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), sampling=Sampling(**sampling))


def _question(i: int) -> str:
    if i % 25 == 3:
        return f"Question {i}: refuse me [[fault:400]]"
    if i % 40 == 7:
        return f"Question {i}: answer badly [[fault:garbage]]"
    return f"Question {i}: what is {i} plus {i}?"


def test_fault_injection_run_keeps_every_item_exactly_once(tmp_path):
    """10% HTTP 500, 5% hangs past the timeout, 5% malformed bodies, 429 bursts; plus items the server always
    refuses (400) and items whose answers never parse. The run completes; every item ends exactly once, as a
    record or as a final error with its reason; transient failures were retried."""
    faults = Faults(http_500=0.10, hang=0.05, malformed=0.05, rate_limit_first=40, rate_limit_every_s=0.5,
                    rate_limit_burst_s=0.1, retry_after_s=0.05, hang_s=30, seed=1)
    n = 240
    with OpenAIServer(slots=32, latency_s=0.01, faults=faults) as server:
        engine = load("openai", model=server.model, base_url=server.base_url, timeout_s=0.4, max_concurrency=48,
                      retry_backoff_s=0.02, max_retries=4)
        try:
            summary = generate(QA(), engine=engine, run=tmp_path / "run", concurrency=48, max_attempts=3,
                               inputs=({"question": _question(i)} for i in range(n)), progress=False)
        finally:
            engine.close()
        injected = server.stats()["faults"]
    run = summary.run
    records = list(run.iter_records())
    errors = list(run.iter_errors())
    final = [e for e in errors if e.get("final")]
    kept_ids = [r["id"] for r in records]
    failed_ids = [e["id"] for e in final]
    assert summary.status == "completed"
    assert len(kept_ids) == len(set(kept_ids)) and len(failed_ids) == len(set(failed_ids))
    assert not set(kept_ids) & set(failed_ids)
    assert sorted(kept_ids + failed_ids) == list(range(n))  # nothing lost, nothing twice
    assert summary.kept == len(records) and summary.failed == len(final)

    refused = {i for i in range(n) if i % 25 == 3}
    garbage = {i for i in range(n) if i % 40 == 7}
    by_id = {e["id"]: e for e in final}
    for i in refused:  # permanent: not retried, recorded with the server's reason
        assert by_id[i]["kind"] == "engine" and "HTTP 400" in by_id[i]["reason"], by_id[i]
        assert by_id[i]["attempt"] == 0
    for i in garbage:  # unparseable: retried with fresh samples, then recorded
        assert by_id[i]["kind"] == "unparseable" and by_id[i]["attempt"] == 2, by_id[i]
        attempts = sorted(e["attempt"] for e in errors if e["id"] == i and e["kind"] == "unparseable")
        assert attempts == [0, 1, 2]
    assert set(by_id) <= refused | garbage | {e["id"] for e in final if e["kind"] == "transient"}
    # the injected faults happened and were retried by the engine; each retry is in errors.jsonl with its reason
    assert injected["http_500"] > 10 and injected["hang"] > 3 and injected["malformed"] > 3
    assert injected["rate_limited"] > 0
    retried = [e for e in errors if e["kind"] == "request"]
    reasons = " ".join(e["reason"] for e in retried)
    for needle in ("HTTP 500", "no answer within timeout_s", "malformed response body", "HTTP 429"):
        assert needle in reasons
    assert all(e["final"] is False for e in retried)
    stats = run.manifest()["counts"]["engine"]
    assert stats["retries"]["http_500"] > 10 and stats["decreases"] >= 1
    for r in records:
        assert isinstance(r["answer"], str) and isinstance(r["confidence"], float)


def test_api_key_never_reaches_the_run_directory(tmp_path, monkeypatch):
    from helpers import SEED_TASKS, run_cli, write_config

    key = "sk-synthloop-test-0123456789abcdef"
    with OpenAIServer(slots=16, latency_s=0.0, api_key=key) as server:
        config = write_config(tmp_path / "keyed.yaml", {
            "output_dir": str(tmp_path / "runs"),
            "program": {"kind": "self_instruct", "seed_tasks": str(SEED_TASKS), "num_examples": 2, "min_words": 1,
                        "rouge_threshold": 1.0},
            "engine": {"kind": "openai", "model": server.model, "base_url": server.base_url,
                       "api_key_env": "SYNTHLOOP_TEST_KEY"},
            "num_records": 6, "concurrency": 4, "show_examples": 1,
        })
        monkeypatch.setenv("SYNTHLOOP_TEST_KEY", key)
        result = run_cli("generate", str(config))
        auth = server.stats()["auth_headers"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Bearer {key}" in auth  # the key did reach the server
    run_dir = tmp_path / "runs" / "keyed"
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {"config.yaml", "manifest.json", "identity.json", "cache.sqlite"} <= {p.name for p in files}
    assert len(list((run_dir / "records").glob("*.jsonl"))) == 1
    for path in files:
        assert key.encode() not in path.read_bytes(), path
    assert "SYNTHLOOP_TEST_KEY" in (run_dir / "config.yaml").read_text()  # the variable's name only
    assert key not in result.stdout + result.stderr


def test_wrong_key_is_one_clear_permanent_error(monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_TEST_KEY", "sk-wrong-key-42")
    with OpenAIServer(slots=4, latency_s=0.0, api_key="sk-right") as server:
        engine = load("openai", model=server.model, base_url=server.base_url, api_key_env="SYNTHLOOP_TEST_KEY")
        try:
            with pytest.raises(EngineError) as err:
                engine.generate([_ask("hi")])
        finally:
            engine.close()
        requests = server.stats()["requests"]
    assert not err.value.transient and requests == 1  # never retried
    message = str(err.value)
    assert "HTTP 401" in message and "$SYNTHLOOP_TEST_KEY" in message and "sk-wrong-key-42" not in message


def test_adaptive_concurrency_lowers_on_429_and_recovers():
    """The first 100 requests are refused with 429 (Retry-After 10 ms), then none: the in-flight limit halves
    down to 1 (once per round trip, not once per 429), then climbs back to the maximum as requests succeed."""
    faults = Faults(rate_limit_first=100, retry_after_s=0.01)
    with OpenAIServer(slots=64, latency_s=0.02, faults=faults) as server:
        engine = load("openai", model=server.model, base_url=server.base_url, max_concurrency=32,
                      retry_backoff_s=0.01, max_retries=30)
        try:
            samples = []
            futures = [engine.submit(_ask(f"q{i}")) for i in range(1500)]
            while not all(f.done() for f in futures):
                samples.append(engine.limit.in_flight)
                time.sleep(0.005)
            results = [f.result() for f in futures]
            stats = engine.engine_stats()
            trace = [limit for _, limit in engine.limit.trace]
        finally:
            engine.close()
        refused = server.stats()["faults"]["rate_limited"]
    assert len(results) == 1500 and refused == 100
    assert stats["lowest_limit"] == 1 and stats["retries"]["http_429"] == 100
    # one decrease per round trip: 32 -> 16 -> ... -> 1 takes 5 decreases, far fewer than the 100 refusals
    assert stats["decreases"] == 5
    bottom = trace.index(1)
    assert trace[:bottom + 1] == sorted(trace[:bottom + 1], reverse=True)  # down...
    last_decrease = max(i for i in range(1, len(trace)) if trace[i] < trace[i - 1])
    climb = trace[last_decrease:]
    assert climb == sorted(climb) and climb[-1] == 32 == stats["limit"]  # ...then back up, slowly, to the max
    assert len(climb) >= 31  # one step at a time
    assert max(samples) <= 32


def test_n_samples_server_side_and_fanned_out():
    request = _ask("Write a line about the sea.", n=3, seed=7, temperature=1.0)
    texts = {}
    for honour in (True, False):
        with OpenAIServer(slots=8, latency_s=0.0, honour_n=honour) as server:
            engine = load("openai", model=server.model, base_url=server.base_url)
            try:
                first = engine.generate([request])[0]
                again = engine.generate([request])[0]
                supported = engine.n_supported
            finally:
                engine.close()
            sent = server.stats()["requests"]
        assert len(first.completions) == 3 and len({c.text for c in first.completions}) == 3
        assert [c.text for c in first.completions] == [c.text for c in again.completions]  # seeded
        assert all(c.finish_reason == "stop" and c.output_tokens > 0 for c in first.completions)
        assert first.prompt_tokens > 0
        assert supported is honour
        # first answer of each call: 1 request; fanned out: the first asks n and learns, the second goes n x 1
        assert sent == (2 if honour else 1 + 2 + 3)
        texts[honour] = first.completions[0].text
    assert texts[True] == texts[False]  # sample k of a fan-out uses seed + k: sample 0 is the same


def test_json_schema_goes_as_response_format_and_truncation_is_reported():
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                               "rank": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["city", "rank"], "additionalProperties": False}
    with OpenAIServer(slots=8, latency_s=0.0) as server:
        engine = load("openai", model=server.model, base_url=server.base_url)
        try:
            results = engine.generate([ChatRequest(messages=({"role": "user", "content": f"city {i}"},),
                                                   sampling=Sampling(seed=i), json_schema=schema)
                                       for i in range(8)])
            short = engine.generate([_ask("a long answer please about many things", max_tokens=2)])[0]
        finally:
            engine.close()
    for result in results:
        value = json.loads(result.text)
        assert set(value) == {"city", "rank"} and len(value["city"]) <= 12 and 1 <= value["rank"] <= 5
    assert short.completions[0].finish_reason == "length" and short.completions[0].output_tokens == 2


def test_unreachable_server_and_wrong_url_fail_clearly():
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = load("openai", model="m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, retry_backoff_s=0.01)
    try:
        with pytest.raises(EngineError) as err:
            engine.generate([_ask("hi")])
    finally:
        engine.close()
    assert err.value.transient and "connection failed" in str(err.value) and "after 2 tries" in str(err.value)
    assert engine.stats["retries"] == {"connection": 1}

    with OpenAIServer(slots=4, latency_s=0.0) as server:
        engine = load("openai", model="m", base_url=server.base_url.replace("/v1", "/nope"))
        try:
            with pytest.raises(EngineError) as err:
                engine.generate([_ask("hi")])
        finally:
            engine.close()
    assert not err.value.transient and "HTTP 404" in str(err.value) and "engine.base_url" in str(err.value)


def test_requests_keep_many_in_flight_on_few_connections():
    """Saturation on the wire: 64 slots x 50 ms; 640 requests must overlap (not run 8 at a time) and reuse
    connections (one per slot in use, not one per request)."""
    with OpenAIServer(slots=64, latency_s=0.05) as server:
        engine = load("openai", model=server.model, base_url=server.base_url, max_concurrency=64)
        try:
            start = time.monotonic()
            engine.generate([_ask(f"q{i}") for i in range(640)])
            seconds = time.monotonic() - start
        finally:
            engine.close()
        stats = server.stats()
    assert stats["max_in_flight"] >= 48  # the server saw the client's whole window at once
    assert seconds < 640 * 0.05 / 8  # far faster than 8 at a time (4 s); ideal is 0.5 s
    assert engine.limit.max_in_flight == 64


def test_dspy_stock_adapters_parse_the_fake_server(tmp_path):
    """The fake server answers DSPy's ChatAdapter and JSONAdapter prompts in their formats, so users can run
    an unmodified DSPy program against it (here through synthloop's bridge, schema off)."""
    from synthloop.engines.dspy_bridge import dspy_lm

    with OpenAIServer(slots=8, latency_s=0.0) as server:
        engine = load("openai", model=server.model, base_url=server.base_url)
        engine.supports_json_schema = False  # as if the server could not enforce schemas
        try:
            outcomes = defaultdict(list)
            for adapter in (dspy.ChatAdapter(), dspy.JSONAdapter()):
                with dspy.context(lm=dspy_lm(engine, Sampling(max_tokens=200)), adapter=adapter):
                    for i in range(4):
                        p = dspy.Predict(Answer)(question=f"what is {i}?")
                        outcomes[type(adapter).__name__].append((type(p.answer), type(p.confidence)))
        finally:
            engine.close()
    for name, kinds in outcomes.items():
        assert Counter(kinds) == Counter({(str, float): 4}), name


def test_sigterm_stops_a_run_on_the_engine_loop_cleanly_and_it_resumes(tmp_path):
    """Runs on an engine with its own loop execute on that loop: SIGTERM must still end them cleanly."""
    import signal

    from helpers import SEED_TASKS, popen_cli, run_cli, write_config

    from synthloop.runs.run_dir import RunDir

    with OpenAIServer(slots=4, latency_s=0.05) as server:
        config = write_config(tmp_path / "term.yaml", {
            "output_dir": str(tmp_path / "runs"),
            "program": {"kind": "self_instruct", "seed_tasks": str(SEED_TASKS), "num_examples": 2, "min_words": 1,
                        "rouge_threshold": 1.0},
            "engine": {"kind": "openai", "model": server.model, "base_url": server.base_url},
            "num_records": 40, "concurrency": 2, "show_examples": 0,
        })
        run = RunDir(tmp_path / "runs" / "term")
        proc = popen_cli("generate", str(config))
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if run.records_dir.is_dir() and sum(1 for _ in run.iter_records()) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()[-2000:]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        assert run.manifest()["status"] == "interrupted", proc.stdout.read()[-2000:]
        first = [r["id"] for r in run.iter_records()]
        assert 3 <= len(first) < 40
        again = run_cli("generate", str(config))
    assert again.returncode == 0, again.stderr[-2000:]
    ids = [r["id"] for r in run.iter_records()]
    assert len(ids) == len(set(ids)) == 40 and set(first) <= set(ids)
    assert run.manifest()["status"] == "completed"


def test_a_dspy_program_over_a_dataset_keeps_the_server_full(tmp_path):
    """`generate` puts every item's calls on the wire at once (up to `concurrency`), not DSPy's 8 threads:
    64 slots x 50 ms; 384 items of one call each take ~0.3 s at 64 in flight, 2.4 s at 8."""
    with OpenAIServer(slots=64, latency_s=0.05) as server:
        engine = load("openai", model=server.model, base_url=server.base_url, max_concurrency=64)
        try:
            start = time.monotonic()
            summary = generate(QA(), engine=engine, run=tmp_path / "full", concurrency=64, progress=False,
                               inputs=({"question": f"what is {i}?"} for i in range(384)))
            seconds = time.monotonic() - start
        finally:
            engine.close()
        stats = server.stats()
    assert summary.kept == 384
    assert stats["max_in_flight"] >= 56 and engine.limit.max_in_flight == 64
    assert seconds < 384 * 0.05 / 8  # faster than 8 threads could ever be (2.4 s)


def test_default_concurrency_keeps_a_queue_behind_the_wire_limit(tmp_path):
    """Without `concurrency`, a run keeps the engine's preferred number of items in flight: twice the openai
    engine's wire limit, so a freed connection is refilled at once."""
    with OpenAIServer(slots=8, latency_s=0.02) as server:
        engine = load("openai", model=server.model, base_url=server.base_url, max_concurrency=8)
        try:
            summary = generate(QA(), engine=engine, run=tmp_path / "run", progress=False,
                               inputs=({"question": f"what is {i}?"} for i in range(64)))
        finally:
            engine.close()
    assert summary.kept == 64
    assert summary.run.manifest()["concurrency"] == 16 and engine.limit.max_in_flight == 8


def test_credentials_in_the_url_are_refused_without_echoing_them():
    from helpers import run_cli

    result = run_cli("generate", "configs/generate/self_instruct.yaml", "--set", "engine.kind=openai",
                     "--set", "engine.base_url=http://me:sk-secret-99@127.0.0.1:9/v1")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "engine.api_key_env" in lines[0]
    assert "sk-secret-99" not in result.stderr + result.stdout


def test_fake_server_runs_as_its_own_process_from_the_command_line():
    with OpenAIServer(slots=2, latency_s=0.0, process=True, faults=Faults(http_500=1.0)) as server:
        engine = load("openai", model=server.model, base_url=server.base_url, max_retries=0)
        try:
            with pytest.raises(EngineError) as err:
                engine.generate([_ask("hi")])
        finally:
            engine.close()
        stats = server.stats()
    assert err.value.transient and "HTTP 500" in str(err.value)
    assert stats["faults"] == {"http_500": 1} and stats["status"] == {"500": 1}
