"""The `judge:` section of configs: which judge, built how. Used by `synthloop judge score|eval` and
the judge-threshold filter.

    judge: {kind: reward_model, path: runs/judge-hh/model}
    judge: {kind: verifier, verifier: math_answer, reference_field: answer}
    judge: {kind: llm, engine: {kind: vllm, model: smollm2-135m-instruct}, llm: {swap: true}}
    judge: {kind: generative, path: runs/gen_judge/model, engine: {kind: vllm, dtype: float32}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from synthloop.configs import Config
from synthloop.engines.config import EngineConfig
from synthloop.judges.base import Judge, JudgeItem, VerifierJudge
from synthloop.judges.generative_judge import GenerativeJudgeConfig
from synthloop.judges.llm_judge import LLMJudgeConfig
from synthloop.judges.preference_data import record_prompt_response


class JudgeSpec(Config):
    kind: Literal["reward_model", "llm", "verifier", "generative"] = Field(
        description="reward_model: a trained artifact (fast); llm: any engine as a judge; verifier: a "
                    "programmatic check (math_answer, ifeval, ifeval_loose, code); generative: a fine-tuned "
                    "JudgeLM-style judge (`synthloop judge train` with kind: generative) on any engine.")
    path: Path | None = Field(None, description="reward_model / generative: the artifact directory "
                                                "(`synthloop judge train`).")
    verifier: str | None = Field(None, description="verifier: its name.")
    engine: EngineConfig = Field(EngineConfig(), description="llm / generative: the engine that judges (for "
                                                             "generative, its model is replaced by path).")
    llm: LLMJudgeConfig = Field(LLMJudgeConfig(), description="llm: debiasing and decoding.")
    generative: GenerativeJudgeConfig = Field(GenerativeJudgeConfig(),
                                              description="generative: debiasing and decoding.")
    reference_field: str | None = Field(None, description="Column holding each record's reference (gold answer, "
                                                          "IFEval row, tests, reference answer).")

    @model_validator(mode="after")
    def _check(self) -> JudgeSpec:
        from synthloop.judges.verifiers import VERIFIERS

        if self.kind == "reward_model" and self.path is None:
            raise ValueError("judge.kind=reward_model needs judge.path (a trained reward-model directory)")
        if self.kind == "generative" and self.path is None:
            raise ValueError("judge.kind=generative needs judge.path (a trained generative-judge directory)")
        if self.kind == "verifier" and self.verifier not in VERIFIERS:
            raise ValueError(f"judge.verifier must be one of {', '.join(VERIFIERS)} (got {self.verifier!r})")
        return self


class BuiltJudge:
    """A judge plus whatever must be closed after it (an engine)."""

    def __init__(self, judge: Judge, engine=None, cache=None):
        self.judge, self.engine, self.cache = judge, engine, cache

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        if self.engine is not None:
            self.engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def build_judge(spec: JudgeSpec, *, cache_path: Path | None = None, log=None) -> BuiltJudge:
    """Build the judge a spec describes. An LLM or generative judge's calls go through a request cache at `cache_path`
    when given, so a killed scoring run resumes without asking the model again."""
    if spec.kind == "reward_model":
        from synthloop.judges.reward_model import RewardModel

        return BuiltJudge(RewardModel.load(spec.path))
    if spec.kind == "verifier":
        from synthloop.judges.verifiers import VERIFIERS

        return BuiltJudge(VerifierJudge(VERIFIERS[spec.verifier]()))
    from synthloop import engines

    artifact = None
    engine_config = spec.engine
    if spec.kind == "generative":
        from synthloop.judges.generative_judge import read_artifact

        artifact = read_artifact(spec.path)  # before the engine starts: a wrong path fails at once
        engine_config = spec.engine.model_copy(update={"model": str(spec.path)})
    engine = engines.from_config(engine_config, log=log)
    judged = engine
    if cache_path is not None:
        from synthloop.runs.cache import CachedEngine, RequestCache

        judged = CachedEngine(engine, RequestCache(cache_path))
    if spec.kind == "generative":
        from synthloop.judges.generative_judge import GenerativeJudge

        judge = GenerativeJudge(judged, spec.generative, artifact=artifact)
    else:
        from synthloop.judges.llm_judge import LLMJudge

        judge = LLMJudge(judged, spec.llm)
    return BuiltJudge(judge, engine, judged if judged is not engine else None)


def record_item(record: dict[str, Any], reference_field: str | None) -> JudgeItem:
    """The (prompt, response, reference) a judge sees for one record."""
    prompt, response = record_prompt_response(record)
    if not isinstance(prompt, str):
        from synthloop.judges.preference_data import render_prompt

        prompt = render_prompt(prompt) if prompt else ""
    reference = None
    if reference_field:
        if reference_field not in record:
            raise KeyError(f"record {record.get('id', '?')}: no reference column {reference_field!r}")
        reference = record[reference_field]
    return JudgeItem(prompt=prompt, response=response, reference=reference)
