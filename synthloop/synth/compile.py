"""Compiling a synthesis program: DSPy's own optimizers tune its prompts (few-shot demos, instructions)
against a metric that is a synthloop judge or verifier, scored on held-out inputs before and after.

    from synthloop.judges.base import VerifierJudge
    from synthloop.judges.verifiers import SpanVerifier
    result = compile_program(TaskGeneration(inputs=..., task_types=["extractive_qa"]), engine=engine,
                             judge=VerifierJudge(SpanVerifier()), out="runs/compiled", train_size=24, held_out=40)
    # or any judge spec, as in a config's `metric:` (e.g. {kind: llm, min_score: 7}), with its acceptance rule
    result.before.mean, result.after.mean           # the metric on the held-out inputs
    TaskGeneration(..., compiled=result.path)        # or `program.compiled: runs/compiled` in a generate config

The metric of a record is the judge's score of `program.judge_item(record)`, and 0 when the program's
own filter drops the record or the item fails (as `generate` would keep nothing of it). A bootstrapped
demo counts as good when the judge accepts it (the panel's rule: a verifier's verdict, or `min_score`).
Before and after are scored on the same held-out items with the same seeds, so the comparison is paired. The
output directory is a run directory (manifest, request cache): a killed compile reruns from its cache.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, Field

from synthloop.configs import RUNTIME, Config, ConfigError
from synthloop.engines import sample_context
from synthloop.engines.base import Engine
from synthloop.engines.config import EngineConfig
from synthloop.engines.dspy_adapter import SchemaJSONAdapter
from synthloop.engines.dspy_bridge import dspy_lm
from synthloop.engines.failures import classify_failure
from synthloop.engines.types import ChatRequest, Sampling, sampling_config
from synthloop.judges.base import Judge
from synthloop.judges.panel import Member
from synthloop.judges.spec import JudgeSpec
from synthloop.runs.cache import CachedEngine, RequestCache
from synthloop.runs.run_dir import ResumePolicy, RunDir
from synthloop.synth.base import SynthProgram
from synthloop.synth.generate_config import ProgramConfig


class OptimizerConfig(Config):
    kind: Literal["bootstrap_fewshot", "bootstrap_random_search", "mipro_v2"] = Field(
        "bootstrap_fewshot",
        description="bootstrap_fewshot: the first traces that pass the metric become few-shot demos; "
        "bootstrap_random_search: several such demo sets, the best on the training items wins; mipro_v2: "
        "also proposes instructions and searches both with Optuna (needs `optuna`; many more calls).")
    max_bootstrapped_demos: int = Field(2, ge=0, le=16, description="Demos per predictor (each one lengthens "
                                                                     "every prompt by a full example).")
    max_rounds: int = Field(2, ge=1, description="bootstrap: tries per training item (later tries at "
                                                 "temperature 1.0).")
    num_candidate_programs: int = Field(4, ge=1, description="bootstrap_random_search: demo sets tried.")
    auto: Literal["light", "medium", "heavy"] = Field("light", description="mipro_v2: search budget.")
    num_threads: int = Field(16, ge=1, description="Items evaluated at once (their calls are batched).",
                             json_schema_extra=RUNTIME)


class Scored(BaseModel):
    score: float
    accepted: bool = Field(False, description="The judge accepts the record (a good demo).")
    kept: bool = Field(description="The program's filter kept the record (and the item did not fail).")
    reason: str = ""


class Evaluation(BaseModel):
    n: int
    mean: float = Field(description="Mean score over all items (dropped or failed items count 0).")
    passed: int = Field(description="Items the judge accepts.")
    kept: int = Field(description="Items whose record the program's filter kept.")
    mean_kept: float | None = Field(None, description="Mean score over kept records only.")
    reasons: dict[str, int] = Field(default_factory=dict, description="Why items were not accepted.")
    items: list[Scored] = Field(default_factory=list)


class CompileResult(BaseModel):
    path: Path = Field(description="program.json: load with `program.compiled` or `load_compiled`.")
    run: Path
    before: Evaluation
    after: Evaluation
    demos: dict[str, int]
    seconds: float


class JudgeMetric:
    """A DSPy metric from a synthloop judge and its acceptance rule: `metric(example, prediction, trace)` is the score,
    or (while an optimizer bootstraps demos, `trace` set) whether the judge accepts the record."""

    def __init__(self, program: SynthProgram, judge: Judge | Member):
        self.program = program
        self.member = judge if isinstance(judge, Member) else Member(judge)

    def score(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> Scored:
        record = self.program.to_record(inputs, prediction)
        dropped = self.program.accept(record)
        if dropped:
            return Scored(score=0.0, kept=False, reason=f"filtered: {dropped}")
        field = self.member.reference_field
        reference = None if field is None else record.get(field, inputs.get(field))
        judgement = self.member.judge.score([self.program.judge_item(record, reference)])[0]
        why = self.member.rejects(judgement)
        return Scored(score=judgement.score, accepted=why is None, kept=True, reason=judgement.rationale or why or "")

    def __call__(self, example: dspy.Example, prediction: dspy.Prediction, trace: Any = None) -> float | bool:
        scored = self.score(dict(example.inputs()), prediction)
        return scored.accepted if trace is not None else scored.score


class _SeedPerRequest(Engine):
    """Gives requests without a seed (the optimizers' calls) one derived from their content and how often that
    content was asked before: reproducible whatever the thread order, and a repeated request draws a new sample."""

    def __init__(self, inner: Engine, base_seed: int):
        super().__init__(inner.model)
        self.inner, self.base_seed = inner, base_seed
        self.kind = inner.kind  # type: ignore[misc]
        self.supports_json_schema = inner.supports_json_schema  # type: ignore[misc]
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def submit(self, request: ChatRequest):
        if request.sampling.seed is None:
            key = hashlib.sha256(json.dumps(request.canonical(self.model), sort_keys=True, default=str).encode())
            with self._lock:
                nth = self._seen[key.hexdigest()]
                self._seen[key.hexdigest()] += 1
            seed = sample_context.derive_seed(self.base_seed, int(key.hexdigest()[:8], 16), nth)
            request = request.model_copy(update={"sampling": request.sampling.model_copy(update={"seed": seed})})
        return self.inner.submit(request)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def evaluate(program: SynthProgram, items: list[tuple[int, dict[str, Any]]], metric: JudgeMetric, lm: dspy.LM,
             adapter: dspy.Adapter, *, seed: int, threads: int, max_attempts: int = 3) -> Evaluation:
    """Run `program` on (item index, inputs) pairs as `generate` would (same seeds, retries of unparseable
    outputs), and score every result with `metric`."""

    def one(item: int, inputs: dict[str, Any]) -> Scored:
        kind = "failed"
        for attempt in range(max_attempts):
            with sample_context.sample(item, attempt, seed), dspy.context(lm=lm, adapter=adapter):
                try:
                    prediction = program(**inputs)
                except Exception as exc:  # scored as a failure, as generate records it
                    kind, retry, _ = classify_failure(exc)
                    if retry:
                        continue
                    break
            try:
                return metric.score(inputs, prediction)
            except Exception as exc:  # a record the program cannot build counts as a failure
                return Scored(score=0.0, kept=False, reason=f"failed: {type(exc).__name__}")
        return Scored(score=0.0, kept=False, reason=f"failed: {kind}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        scored = list(pool.map(lambda pair: one(*pair), items))
    kept = [s.score for s in scored if s.kept]
    reasons = Counter(_short(s.reason) for s in scored if not s.accepted)
    return Evaluation(n=len(scored), mean=sum(s.score for s in scored) / max(1, len(scored)),
                      passed=sum(s.accepted for s in scored), kept=len(kept),
                      mean_kept=sum(kept) / len(kept) if kept else None, reasons=dict(reasons.most_common()),
                      items=scored)


def _short(reason: str) -> str:
    return reason.split("(")[0].split(":")[0].strip() if not reason.startswith(("filtered", "failed")) \
        else ": ".join(p.split("(")[0].strip() for p in reason.split(":")[:2])


def _optimizer(config: OptimizerConfig, metric: JudgeMetric, seed: int):
    common = dict(metric=metric, max_bootstrapped_demos=config.max_bootstrapped_demos, max_labeled_demos=0)
    if config.kind == "bootstrap_fewshot":
        return dspy.BootstrapFewShot(**common, max_rounds=config.max_rounds)
    if config.kind == "bootstrap_random_search":
        return dspy.BootstrapFewShotWithRandomSearch(**common, max_rounds=config.max_rounds,
                                                      num_candidate_programs=config.num_candidate_programs,
                                                      num_threads=config.num_threads)
    return dspy.MIPROv2(**common, auto=config.auto, num_threads=config.num_threads, seed=seed)


def compile_program(
    program: SynthProgram,
    *,
    engine: Engine,
    judge: Judge | Member,
    out: str | Path,
    inputs: Iterable[dict[str, Any]] | None = None,
    train_size: int = 24,
    held_out: int = 40,
    optimizer: OptimizerConfig | None = None,
    sampling: Sampling | None = None,
    seed: int = 0,
    json_max_chars: int | None = None,
    resume: ResumePolicy = "if-unchanged",
    config_yaml: str | None = None,
    log=print,
) -> CompileResult:
    """Optimize `program` on its first `train_size` inputs; score it before and after on the next `held_out`. `judge`:
    a Judge (the panel's default rule) or a `Member` (a judge with `min_score`, `reference_field`)."""
    if getattr(program.config, "compiled", None) is not None:
        raise ConfigError("program.compiled is set: compiling starts from the plain program (unset it)")
    if (optimizer or OptimizerConfig()).kind == "mipro_v2" and importlib.util.find_spec("optuna") is None:
        raise ConfigError("optimizer.kind=mipro_v2 needs optuna: pip install 'optuna>=3.4'")
    optimizer = optimizer or OptimizerConfig()
    sampling = sampling or Sampling()
    source = inputs if inputs is not None else program.inputs()
    items = list(itertools.islice(enumerate(source), train_size + held_out))
    if len(items) < train_size + held_out:
        raise ConfigError(f"{len(items)} inputs; compiling needs train_size + held_out = {train_size + held_out}")
    train, test = items[:train_size], items[train_size:]
    metric = JudgeMetric(program, judge)
    identity = {"program": program.describe(), "engine": engine.describe(),
                "sampling": sampling.model_dump(mode="json"), "seed": seed,
                "optimizer": optimizer.model_dump(exclude={"num_threads"}),
                "judge": metric.member.judge.describe(), "reference": metric.member.reference_field,
                "min_score": metric.member.min_score, "max_score": metric.member.max_score,
                "train_size": train_size, "held_out": held_out}
    run = RunDir.open(out, identity=identity, kind="compile", resume=resume, config_yaml=config_yaml)
    cache = RequestCache(run.cache_path)
    cached = CachedEngine(engine, cache)
    lm = dspy_lm(_SeedPerRequest(cached, seed), sampling, json_max_chars=json_max_chars)
    adapter = SchemaJSONAdapter() if engine.supports_json_schema else dspy.ChatAdapter()
    started = time.time()
    try:
        log(f"scoring the plain program on {len(test)} held-out inputs...")
        before = evaluate(program, test, metric, lm, adapter, seed=seed, threads=optimizer.num_threads)
        log(f"before: mean {before.mean:.3f}, {before.passed}/{before.n} pass; optimizing with {optimizer.kind} "
            f"on {len(train)} inputs...")
        trainset = [dspy.Example(**inputs).with_inputs(*inputs) for _, inputs in train]
        extra = {}
        if optimizer.kind == "mipro_v2":  # MIPROv2 validates on 80% of the trainset; its minibatch must fit
            extra["minibatch_size"] = min(35, max(1, int(len(trainset) * 0.8)))
        with dspy.context(lm=lm, adapter=adapter):
            compiled = _optimizer(optimizer, metric, seed).compile(program, trainset=trainset, **extra)
        demos = {name: len(p.demos) for name, p in compiled.named_predictors()}
        log(f"demos per predictor: {demos}; scoring the compiled program...")
        after = evaluate(compiled, test, metric, lm, adapter, seed=seed, threads=optimizer.num_threads)
    finally:
        cache.close()
    path = run.path / "program.json"
    compiled.save(str(path))
    state = json.loads(path.read_text())
    seconds = time.time() - started
    state["synthloop"] = {"program": program.name, "config": program.config.model_dump(mode="json"),
                          "optimizer": optimizer.model_dump(), "judge": metric.member.judge.describe(),
                          "held_out": {"before": before.mean, "after": after.mean, "n": len(test)}}
    path.write_text(json.dumps(state, indent=2, default=str))
    result = CompileResult(path=path, run=run.path, before=before, after=after, demos=demos, seconds=seconds)
    (run.path / "report.json").write_text(result.model_dump_json(indent=2))
    run.update_manifest(status="completed", seconds=round(seconds, 1),
                        counts={"held_out": len(test), "train": len(train), "before": round(before.mean, 4),
                                "after": round(after.mean, 4), "demos": demos})
    run.close()
    return result



class CompileConfig(Config):
    """The config of `synthloop compile`: a program (as in a generate config), an engine, an optimizer, a metric."""

    name: str | None = Field(None, description="Output run name (under output_dir); default: the config file's name.",
                             json_schema_extra=RUNTIME)
    output_dir: Path = Field(Path("runs"), description="Where the compile run directory goes.",
                             json_schema_extra=RUNTIME)
    program: ProgramConfig = Field(description="The program to optimize (as in a generate config); its inputs give "
                                               "the training and held-out items.")
    engine: EngineConfig = EngineConfig()
    sampling: sampling_config("How the program's model calls sample.", temperature=0.7, max_tokens=384)
    optimizer: OptimizerConfig = OptimizerConfig()
    metric: JudgeSpec = Field(description="The judge or verifier that scores each record, with its acceptance rule "
                                          "(a good demo) and reference_field (a record or input column).")
    train_size: int = Field(24, ge=2, description="Inputs the optimizer learns from (the first ones).")
    held_out: int = Field(40, ge=1, description="Inputs after those, scored before and after compiling.")
    seed: int = Field(0, description="Seeds every model call (paired before/after scoring).")
