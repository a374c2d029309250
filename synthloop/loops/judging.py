"""The judges of a loop, from config, and scoring sampled answers with them.

    judges:
      - {kind: math_answer}                                   # a verifier: pass/fail, score 0 or 1
      - {kind: python, factory: mypkg.judges:load_rm, options: {path: runs/judge/model}, weight: 0.5,
         min_score: 0.2}                                      # any synthloop Judge, built by a factory

A sample is accepted when every judge accepts it: a verifier by its verdict, a scoring judge when its
score reaches `min_score`. Its combined score is the weighted mean of the judges' scores; samples are
ranked by it (best-vs-worst preference pairs) and it is the GRPO reward.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.base import Judge, JudgeItem, VerifierJudge
from synthloop.runs.append_log import AppendLog, next_part
from synthloop.runs.run_dir import read_jsonl


class _JudgeCommon(Config):
    weight: float = Field(1.0, gt=0, description="Weight of this judge's score in the combined score.")
    min_score: float | None = Field(
        None, description="Accept a sample when the score reaches this (judges without a pass/fail verdict)."
    )


class MathAnswerJudgeSpec(_JudgeCommon):
    kind: Literal["math_answer"] = "math_answer"

    def build(self) -> Judge:
        from synthloop.judges.verifiers import MathAnswerVerifier

        return VerifierJudge(MathAnswerVerifier())


class PythonJudgeSpec(_JudgeCommon):
    kind: Literal["python"] = "python"
    factory: str = Field(description="'module:callable' returning a synthloop Judge, called with `options`.")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the factory.")

    def build(self) -> Judge:
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


JUDGE_SPECS: dict[str, type[_JudgeCommon]] = {"math_answer": MathAnswerJudgeSpec, "python": PythonJudgeSpec}
JudgeSpec = Annotated[Union[tuple(JUDGE_SPECS.values())], Field(discriminator="kind")]  # noqa: UP007


class Panel:
    """The built judges of a loop, with their weights and acceptance rules."""

    def __init__(self, specs: Iterable[Any]):
        self.specs = list(specs)
        if not self.specs:
            raise ValueError("a loop needs at least one judge or verifier (judges: [{kind: math_answer}])")
        self.judges = []
        for i, spec in enumerate(self.specs):
            try:
                self.judges.append(spec.build())
            except (ImportError, AttributeError, TypeError, ValueError) as exc:
                from synthloop.configs import ConfigError

                raise ConfigError(f"judges[{i}] ({spec.kind}): cannot build the judge: {exc}") from None

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.judges]

    def score(self, items: list[JudgeItem]) -> list[dict[str, Any]]:
        """Per item: combined `score`, `accepted`, and each judge's score (`scores`) and rationale."""
        verdicts = [j.score(items) for j in self.judges]
        total = sum(s.weight for s in self.specs)
        out = []
        for i in range(len(items)):
            scores, accepted, notes = {}, True, {}
            combined = 0.0
            for spec, judge, per_judge in zip(self.specs, self.judges, verdicts, strict=True):
                v = per_judge[i]
                scores[judge.name] = v.score
                combined += spec.weight * v.score
                if v.passed is not None and spec.min_score is None:
                    accepted &= bool(v.passed)
                else:
                    bound = spec.min_score if spec.min_score is not None else (judge.scale[0] + judge.scale[1]) / 2
                    accepted &= v.score >= bound
                if v.rationale:
                    notes[judge.name] = v.rationale
            out.append({"score": combined / total, "accepted": accepted, "scores": scores, "notes": notes})
        return out


def judge_records(records: Iterable[dict[str, Any]], panel: Panel, out_dir: Path, *, batch: int = 64,
                  on_progress=None) -> Iterator[dict[str, Any]]:
    """Score every sample of every record into `out_dir/part-*.jsonl` (one part per session; a record already
    judged in an earlier session is skipped), yielding each judged record as it is written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {row["id"] for row in iter_judged(out_dir)}
    todo = (r for r in records if r["id"] not in done)
    with AppendLog(next_part(out_dir)) as log:
        while True:
            chunk = [r for _, r in zip(range(batch), todo, strict=False)]
            if not chunk:
                return
            items = [JudgeItem(prompt=_prompt_text(r), response=s["text"], reference=r.get("reference"))
                     for r in chunk for s in r["samples"]]
            verdicts = iter(panel.score(items))
            for record in chunk:
                samples = [{**s, **next(verdicts)} for s in record["samples"]]
                judged = {k: v for k, v in record.items() if k not in ("samples", "provenance")}
                judged["samples"] = samples
                log.write(judged)
                if on_progress:
                    on_progress(1)
                yield judged


def iter_judged(out_dir: Path) -> Iterator[dict[str, Any]]:
    """Judged records of every session, each id once (the first written wins)."""
    seen: set[int] = set()
    for part in sorted(Path(out_dir).glob("part-*.jsonl")):
        for row in read_jsonl(part):
            if row["id"] not in seen:
                seen.add(row["id"])
                yield row


def _prompt_text(record: dict[str, Any]) -> str:
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in record.get("messages", []) if m.get("role") == "user"]
    return users[-1] if users else ""
