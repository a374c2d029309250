"""vLLM's parallelism settings: passed through to vLLM's engine arguments on GPUs, refused in one line on CPU."""

from __future__ import annotations

import pytest

from synthloop.configs import ConfigError
from synthloop.engines import EngineConfig
from synthloop.engines.serving import ServeConfig, vllm_command
from synthloop.engines.types import EngineError
from synthloop.engines.vllm_engine import VLLMEngine, engine_args, vllm_available


def test_parallel_sizes_reach_vllms_engine_arguments(tiny_model_path):
    if not vllm_available():
        pytest.skip("vLLM is not installed (SYNTHLOOP_VLLM=none)")
    from vllm.engine.arg_utils import AsyncEngineArgs

    config = EngineConfig(kind="vllm", tensor_parallel_size=2, pipeline_parallel_size=1, data_parallel_size=4)
    assert config.gpus_per_engine == 8
    args = AsyncEngineArgs(**engine_args(config, str(tiny_model_path), cpu=False))
    assert (args.tensor_parallel_size, args.pipeline_parallel_size, args.data_parallel_size) == (2, 1, 4)
    cpu = engine_args(config, str(tiny_model_path), cpu=True)
    assert "tensor_parallel_size" not in cpu and cpu["enable_chunked_prefill"] is False


def test_parallel_sizes_above_one_are_refused_on_cpu(tiny_model_path):
    with pytest.raises(EngineError) as caught:
        VLLMEngine(tiny_model_path, config=EngineConfig(kind="vllm", tensor_parallel_size=2))
    assert str(caught.value) == ("engine: tensor/pipeline/data_parallel_size ask for 2 GPUs, but this machine has none "
                                 "(on CPU they must be 1; scale out with executor replicas)")
    with pytest.raises(ValueError):
        EngineConfig(data_parallel_size=0)
    with pytest.raises(ConfigError, match="more than 1 needs GPUs"):
        vllm_command(ServeConfig(data_parallel_size=2), tiny_model_path, "tiny")
    cmd, _ = vllm_command(ServeConfig(), tiny_model_path, "tiny")
    assert "--tensor-parallel-size" not in cmd  # on CPU the flags are left out
