"""The one judge spec: every place that takes judges (a loop's `judges`, `synthloop filter`'s judge_threshold,
`synthloop compile`'s metric, `synthloop judge score|eval`) takes these, and any judge works in any of them.

    judges:
      - {kind: math_answer}                                        # verifiers: pass/fail against the reference
      - {kind: ifeval}                                             # (ifeval, code, span_in_passage too)
      - {kind: reward_model, path: runs/judge_hh/model, weight: 0.5}
      - {kind: llm, engine: {model: smollm2-135m-instruct}, min_score: 6}
      - {kind: length, min_score: 0.8}                             # S_l / 100 against the required length
      - {kind: well_formed, min_words: 5}                          # no empty / looping answers (a collapse guard)
      - {kind: python, factory: mypkg.judges:build, options: {...}}

Every spec has `build(engines=...)` -> a `Judge`, and the acceptance fields the panel applies (`weight`,
`min_score`, `max_score`: see `synthloop.judges.panel`). Judges that need a model (llm, generative) ask the
`EnginePool` they are given for a handle under the role "judge", so whoever runs them owns the engine.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from synthloop.configs import Config
from synthloop.engines.config import EngineConfig
from synthloop.engines.pool import EnginePool
from synthloop.judges.base import Judge, VerifierJudge
from synthloop.judges.generative_judge import GenerativeJudgeConfig
from synthloop.judges.llm_judge import LLMJudgeConfig
from synthloop.judges.verifiers.sandbox import SandboxConfig


class JudgeSpecBase(Config):
    weight: float = Field(1.0, gt=0, description="Weight of this judge's score in a panel's combined score (also its "
                                                 "GRPO reward weight).")
    min_score: float | None = Field(None, description="Accept a response when its score reaches this. Default: a "
                                                      "verifier's pass/fail verdict; for a scoring judge, the middle "
                                                      "of its scale.")
    max_score: float | None = Field(None, description="Also reject responses scoring above this.")
    gate: bool = Field(True, description="false: this judge only ranks (its score joins the weighted combined score, "
                                         "by which samples are ranked into SFT and DPO data) and never rejects.")
    reference_field: str | None = Field(None, description="The record column handed to the judge as its reference "
                                                          "(gold answer, IFEval row, tests, passage). Default: the "
                                                          "record's `reference` column when it has one.")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        raise NotImplementedError


# -- verifiers --------------------------------------------------------------------------------------
class MathAnswerSpec(JudgeSpecBase):
    """The final number of the response equals the reference's (GSM8K's `#### N` or a plain number)."""

    kind: Literal["math_answer"] = "math_answer"

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.verifiers.math import MathAnswerVerifier

        return VerifierJudge(MathAnswerVerifier())


class IFEvalSpec(JudgeSpecBase):
    """IFEval's instruction checkers against an IFEval row (instruction_id_list, kwargs); score = share followed."""

    kind: Literal["ifeval"] = "ifeval"
    loose: bool = Field(False, description="IFEval's loose rule (also tries without the first/last line and "
                                           "without markdown asterisks).")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.verifiers.ifeval import IFEvalVerifier

        return VerifierJudge(IFEvalVerifier(loose=self.loose))


class CodeSpec(JudgeSpecBase, SandboxConfig):
    """The response's program runs against the reference tests in the sandbox (its limits are this spec's fields:
    timeout_s, memory_mb, max_processes, max_file_mb, tmp_mb, allow_unisolated)."""

    kind: Literal["code"] = "code"

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.verifiers.code import CodeVerifier

        return VerifierJudge(CodeVerifier(**{name: getattr(self, name) for name in SandboxConfig.model_fields}))


class SpanSpec(JudgeSpecBase):
    """The response is a short span of the reference passage (extractive QA)."""

    kind: Literal["span_in_passage"] = "span_in_passage"
    max_words: int = Field(30, ge=1, description="Longest span accepted.")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.verifiers.span import SpanVerifier

        return VerifierJudge(SpanVerifier(max_words=self.max_words))


class WellFormedSpec(JudgeSpecBase):
    """The collapse guard: at least `min_words` words and not repeating itself (share of repeated word n-grams at
    most `max_repeated_share`); fails an empty, one-word or looping answer that passes a format check."""

    kind: Literal["well_formed"] = "well_formed"
    min_words: int = Field(5, ge=0, description="Fewest words of an accepted response.")
    max_repeated_share: float = Field(0.3, ge=0, le=1, description="Most share of the response's word n-grams that "
                                                                    "repeat an earlier one.")
    n: int = Field(3, ge=1, description="Words per n-gram of the repetition measure.")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.verifiers.well_formed import WellFormedVerifier

        return VerifierJudge(WellFormedVerifier(self.min_words, self.max_repeated_share, self.n))


# -- scoring judges ---------------------------------------------------------------------------------
class RewardModelSpec(JudgeSpecBase):
    """A trained reward model (`synthloop judge train`): fast, a Bradley-Terry score per response."""

    kind: Literal["reward_model"] = "reward_model"
    path: Path = Field(description="The trained reward-model directory (runs/<judge run>/model).")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.reward_model import RewardModel

        return RewardModel.load(self.path)


class LengthSpec(JudgeSpecBase):
    """LongWriter's length score S_l / 100 of the response against the reference's required length in words."""

    kind: Literal["length"] = "length"

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.length import LengthFollowingJudge

        return LengthFollowingJudge()


class EmbeddingSimilaritySpec(JudgeSpecBase):
    """Cosine similarity of the response's embedding to the reference's."""

    kind: Literal["embedding_similarity"] = "embedding_similarity"
    embedder: str = Field("all-minilm-l6-v2", description="The sentence-transformers model.")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.similarity import EmbeddingSimilarityJudge

        return EmbeddingSimilarityJudge(self.embedder)


def _judge_engine(config: EngineConfig, engines: EnginePool | None, cache_path: Path | None):
    """The engine a model-backed judge talks to: a handle from the caller's pool (role "judge"), behind a request
    cache when `cache_path` is given (a killed scoring run resumes without asking the model again)."""
    handle = (engines or EnginePool()).handle("judge", config)
    if cache_path is None:
        return handle
    from synthloop.runs.cache import CachedEngine, RequestCache

    return CachedEngine(handle, RequestCache(cache_path))


class LLMSpec(JudgeSpecBase, LLMJudgeConfig):
    """Any engine as a judge: a 1-10 score with a rationale (JudgeLM's swap debiasing for pairs)."""

    kind: Literal["llm"] = "llm"
    engine: EngineConfig = Field(EngineConfig(), description="The engine that judges.")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.llm_judge import LLMJudge

        config = LLMJudgeConfig(**{name: getattr(self, name) for name in LLMJudgeConfig.model_fields})
        return LLMJudge(_judge_engine(self.engine, engines, cache_path), config)


class GenerativeSpec(JudgeSpecBase, GenerativeJudgeConfig):
    """A fine-tuned JudgeLM-style judge (`synthloop judge train` with `kind: generative`) on any engine."""

    kind: Literal["generative"] = "generative"
    path: Path = Field(description="The trained generative-judge directory.")
    engine: EngineConfig = Field(EngineConfig(), description="The engine it runs on (its model is replaced by path).")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        from synthloop.judges.generative_judge import GenerativeJudge, read_artifact

        artifact = read_artifact(self.path)  # before any engine starts: a wrong path fails at once
        config = GenerativeJudgeConfig(**{name: getattr(self, name) for name in GenerativeJudgeConfig.model_fields})
        engine = _judge_engine(self.engine.model_copy(update={"model": str(self.path)}), engines, cache_path)
        return GenerativeJudge(engine, config, artifact=artifact)


class PythonSpec(JudgeSpecBase):
    """Any `synthloop.judges.Judge`, built by a factory of yours."""

    kind: Literal["python"] = "python"
    factory: str = Field(description="'module:callable' returning a synthloop Judge, called with `options`.")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the factory.")

    def build(self, engines: EnginePool | None = None, cache_path: Path | None = None) -> Judge:
        module, _, attr = self.factory.partition(":")
        if not module or not attr:
            raise ValueError(f"judge factory {self.factory!r}: expected 'module:callable'")
        target: Any = importlib.import_module(module)
        for part in attr.split("."):
            target = getattr(target, part)
        judge = target(**self.options)
        if not isinstance(judge, Judge):
            raise TypeError(f"judge factory {self.factory!r} returned {type(judge).__name__}, not a synthloop Judge")
        return judge


#: judge specs by the `kind` configs name
JUDGE_SPECS: dict[str, type[JudgeSpecBase]] = {spec.model_fields["kind"].default: spec for spec in (
    MathAnswerSpec, IFEvalSpec, CodeSpec, SpanSpec, WellFormedSpec, RewardModelSpec, LLMSpec, GenerativeSpec,
    LengthSpec, EmbeddingSimilaritySpec, PythonSpec)}
JudgeSpec = Annotated[Union[tuple(JUDGE_SPECS.values())], Field(discriminator="kind")]  # noqa: UP007
