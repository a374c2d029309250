"""The `engine:` section of every config."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from synthloop.configs import RUNTIME, Config

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
EngineKind = Literal["auto", "vllm", "transformers", "openai"]


class EngineConfig(Config):
    kind: EngineKind = Field(
        "auto",
        description="vllm (in-process, the default when installed), transformers (any machine), "
        "openai (any OpenAI-compatible server), or auto: vllm if importable, else transformers.",
    )
    model: str = Field(
        "smollm2-135m-instruct",
        description="A registered name (`synthloop models list`), a local checkpoint directory, or a hub id.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bfloat16 for vLLM, float32 for transformers on CPU, bfloat16 on GPU."
    )
    max_model_len: int = Field(4096, ge=128, description="Context length (prompt + completion) in tokens.")
    # vLLM
    kv_cache_gib: float = Field(1.0, gt=0, description="vLLM on CPU: KV-cache size in GiB.", json_schema_extra=RUNTIME)
    enforce_eager: bool | None = Field(
        None,
        description="vLLM: skip torch.compile (starts in ~25 s instead of ~90 s on CPU). Default: True on CPU.",
        json_schema_extra=RUNTIME,
    )
    max_num_seqs: int = Field(256, ge=1, description="vLLM: most sequences decoded at once.", json_schema_extra=RUNTIME)
    gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1, description="vLLM on GPU: share of GPU memory.", json_schema_extra=RUNTIME
    )
    tensor_parallel_size: int = Field(
        1, ge=1, description="vLLM on GPUs: GPUs one copy of the model is split across (tensor parallelism, within "
        "a node). The engine needs tensor_parallel_size x pipeline_parallel_size x data_parallel_size GPUs; on CPU "
        "only 1.",
        json_schema_extra=RUNTIME,
    )
    pipeline_parallel_size: int = Field(
        1, ge=1, description="vLLM on GPUs: stages the model's layers are split into (pipeline parallelism); "
        "counts toward the GPUs the engine needs like tensor_parallel_size. On CPU only 1.", json_schema_extra=RUNTIME,
    )
    data_parallel_size: int = Field(
        1, ge=1, description="vLLM on GPUs: copies of the model inside one engine, each on its own "
        "tensor_parallel_size x pipeline_parallel_size GPUs, requests balanced across them (8 GPUs: 8 x TP 1, "
        "4 x TP 2, ...). On CPU only 1.", json_schema_extra=RUNTIME,
    )
    # transformers
    batch_size: int = Field(
        32, ge=1, description="transformers: most requests decoded in one padded batch.", json_schema_extra=RUNTIME
    )
    # OpenAI-compatible servers
    base_url: str | None = Field(
        None, description="openai: the server's /v1 URL, e.g. http://127.0.0.1:8000/v1.", json_schema_extra=RUNTIME
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="openai: the environment variable that holds the API key (never the key).",
        json_schema_extra=RUNTIME,
    )
    max_concurrency: int = Field(
        64, ge=1, description="openai: most requests in flight; lowered on 429/503 answers and raised again as "
        "requests succeed.", json_schema_extra=RUNTIME,
    )
    timeout_s: float = Field(
        60.0, gt=0, description="openai: seconds a request may wait for its answer before it is retried (a hung "
        "request costs this much per try).", json_schema_extra=RUNTIME
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="openai: seconds to open a connection (an unreachable host fails this fast).",
        json_schema_extra=RUNTIME,
    )
    max_retries: int = Field(
        4, ge=0, description="openai: retries of a request after a timeout, connection error, 5xx, 429 or "
        "malformed answer (exponential backoff with jitter, honouring Retry-After).", json_schema_extra=RUNTIME
    )
    retry_backoff_s: float = Field(
        0.5, gt=0, description="openai: base of the exponential backoff between retries, in seconds.",
        json_schema_extra=RUNTIME,
    )
    json_string_max_chars: int | None = Field(
        None,
        ge=1,
        description="Constrained JSON output: the longest string a field may hold. Default: derived from "
        "max_tokens so that the JSON always closes before the token budget ends.",
    )

    @property
    def gpus_per_engine(self) -> int:
        """GPUs one vLLM engine of this config occupies."""
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.data_parallel_size

    @field_validator("base_url")
    @classmethod
    def _an_http_url_without_credentials(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("not a URL; expected e.g. http://127.0.0.1:8000/v1") from None
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL (the config is written to the run directory); put the "
                             "key in an environment variable and name it in engine.api_key_env")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL with a host; expected e.g. http://127.0.0.1:8000/v1")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, value: str) -> str:
        # A key pasted here by mistake would be written to config.yaml and into error texts: refuse it, and never
        # echo it (the word "credential" keeps `configs.format_validation_error` from repeating the value).
        mixed = any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value)
        if not _VARIABLE.fullmatch(value) or (mixed and len(value) >= 20):  # the second: random-looking, a key
            raise ValueError("must name an environment variable (letters, digits and _, e.g. OPENAI_API_KEY), not "
                             "hold a credential; the value is not shown")
        return value
