"""`synthloop serve`: argument handling and errors (light), and one real vLLM server start (marked vllm)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
from cli_driver import run_in_process as run_cli
from helpers import ROOT, cli_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_dry_run_shows_the_vllm_command_with_cpu_workarounds(tiny_model_path):
    result = run_cli("serve", "tiny-random-chat", "--port", "8123", "--served-model-name", "tiny", "--dry-run",
                     "--set", "dtype=float32", "--set", "extra_args=[--max-num-seqs, '8']")
    assert result.returncode == 0, result.stderr
    cmd = result.stdout.split()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]  # the module: the `vllm` command is broken
    assert cmd[cmd.index("--model") + 1] == str(tiny_model_path)
    assert cmd[cmd.index("--served-model-name") + 1] == "tiny" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--dtype") + 1] == "float32" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert "--enforce-eager" in cmd and "--no-enable-chunked-prefill" in cmd
    assert cmd[-2:] == ["--max-num-seqs", "8"]


def test_loop_and_training_run_directories_serve_their_checkpoint(tmp_path, tiny_model_path):
    import shutil

    loop = tmp_path / "my-loop"
    ckpt = loop / "round-002" / "train-sft" / "model"
    shutil.copytree(tiny_model_path, ckpt)
    (loop / "state.json").write_text(json.dumps({"checkpoints": {"policy": str(ckpt)}, "rounds": []}))
    result = run_cli("serve", str(loop), "--dry-run")
    assert result.returncode == 0, result.stderr
    cmd = result.stdout.split()
    assert cmd[cmd.index("--model") + 1] == str(ckpt) and cmd[cmd.index("--served-model-name") + 1] == "my-loop"

    training = loop / "round-002" / "train-sft"
    result = run_cli("serve", str(training), "--dry-run")
    assert result.returncode == 0 and str(ckpt) in result.stdout and "--served-model-name train-sft" in result.stdout

    untrained = tmp_path / "fresh-loop"
    untrained.mkdir()
    (untrained / "state.json").write_text(json.dumps({"checkpoints": {}}))
    assert "no trained checkpoint yet" in _one_line_error(run_cli("serve", str(untrained), "--dry-run"))


def test_errors_are_one_line(tmp_path):
    assert "neither a registered model" in _one_line_error(run_cli("serve", "no-such-model", "--dry-run"))
    assert "did you mean 'port'" in _one_line_error(run_cli("serve", "tiny-random-chat", "--set", "portt=1"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no model checkpoint in it" in _one_line_error(run_cli("serve", str(empty), "--dry-run"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert "LoRA adapter" in _one_line_error(run_cli("serve", str(adapter), "--dry-run"))
    assert "SYNTHLOOP_NO_SUCH_KEY" in _one_line_error(
        run_cli("serve", "tiny-random-chat", "--dry-run", "--set", "api_key_env=SYNTHLOOP_NO_SUCH_KEY"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "is not free" in _one_line_error(run_cli("serve", "tiny-random-chat", "--port", str(port)))


@pytest.mark.vllm
def test_real_server_serves_the_openai_engine(tiny_model_path, monkeypatch):
    """One real start: `synthloop serve` -> vLLM's HTTP server -> synthloop's openai engine (schema, n, key)."""
    from synthloop.engines import ChatRequest, EngineError, Sampling, load

    pytest.importorskip("vllm")
    port = _free_port()
    env = {**cli_env(), "SYNTHLOOP_SERVE_KEY": "sk-serve-test-1"}
    proc = subprocess.Popen([sys.executable, "-m", "synthloop", "serve", "tiny-random-chat", "--port", str(port),
                             "--set", "dtype=float32", "--set", "api_key_env=SYNTHLOOP_SERVE_KEY", "--set",
                             "max_model_len=512"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                            # as a background job of a CI script would: Ctrl-C must still stop it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = []
    try:
        deadline = time.time() + 400
        while time.time() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if line.startswith("ready"):
                break
        assert any(line.startswith("ready") for line in lines), "".join(lines)[-3000:]
        usage = "".join(proc.stderr.readline() for _ in range(2))  # the usage lines after "ready"
        import threading

        threading.Thread(target=proc.stderr.read, daemon=True).start()  # the server's log: never let it block
        assert f"engine.base_url=http://127.0.0.1:{port}/v1" in usage and "engine.model=tiny-random-chat" in usage

        monkeypatch.setenv("SYNTHLOOP_SERVE_KEY", "sk-serve-test-1")
        engine = load("openai", model="tiny-random-chat", base_url=f"http://127.0.0.1:{port}/v1",
                      api_key_env="SYNTHLOOP_SERVE_KEY")
        schema = {"type": "object", "properties": {"word": {"type": "string", "maxLength": 8}},
                  "required": ["word"], "additionalProperties": False}
        try:
            results = engine.generate([
                ChatRequest(messages=({"role": "user", "content": f"A word, please ({i})."},),
                            sampling=Sampling(max_tokens=40, seed=i, temperature=1.0, n=2), json_schema=schema)
                for i in range(4)])
        finally:
            engine.close()
        for result in results:
            assert len(result.completions) == 2 and result.prompt_tokens > 0
            for c in result.completions:
                assert set(json.loads(c.text)) == {"word"} and c.output_tokens > 0
        monkeypatch.setenv("SYNTHLOOP_SERVE_KEY", "sk-wrong")
        engine = load("openai", model="tiny-random-chat", base_url=f"http://127.0.0.1:{port}/v1",
                      api_key_env="SYNTHLOOP_SERVE_KEY")
        try:
            with pytest.raises(EngineError, match="HTTP 401"):
                engine.generate([ChatRequest(messages=({"role": "user", "content": "hi"},))])
        finally:
            engine.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)  # vLLM's shutdown takes a while on 2 busy cores
            stopped_by_sigint = True
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
            stopped_by_sigint = False
    assert stopped_by_sigint, "synthloop serve did not exit within 120 s of Ctrl-C"
    with socket.socket() as s:  # the server is gone with the command
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"])
                 if "api_server" in " ".join(p.info["cmdline"] or []) and str(port) in (p.info["cmdline"] or [])]
    assert not leftovers, f"vLLM server processes left behind: {leftovers}"
