"""Similar problems: for each input problem, `per_problem` new problems that need the same skills, each solved by
the writer (the data-synthesis step of test-time self-improvement, TT-SI; with a stronger engine, of TT-D).

Each (problem, variant) is one item with its own seed, so the variants of a problem are independent samples.
Kept records: `problem` (the original), `new_problem`, `solution`, `answer` (as written) and `answer_key` (the
answer read canonically, see `synthloop.judges.self_consistency`), `variant`, and `messages` (the new problem and
its solution, TRL's format). Dropped, with the reason: an empty or too short problem, one that copies the original
(ROUGE-L F1 against it >= `max_copy`), an answer that gives no answer under `answer_key` (e.g. no number), and a
repeat of an earlier new problem. The writer's answer is unverified: the TT-SI recipe checks it by self-consistency.

    synthloop generate configs/generate/similar_problems.yaml
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import dspy
from pydantic import Field
from rouge_score import rouge_scorer

from synthloop.judges.self_consistency import AnswerKey, answer_key
from synthloop.prompts.similar_problems import WriteSimilarProblem
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import BaseProgramConfig, SynthProgram, as_text, carry_columns, dataset_rows
from synthloop.text import normal_form


class SimilarProblemsConfig(BaseProgramConfig):
    kind: Literal["similar_problems"] = "similar_problems"
    inputs: DatasetInput | None = Field(
        None, description="The problems: rows with a `problem` column (map one, e.g. {problem: question}). Python "
        "callers may pass rows to generate() instead (expanded with `items()`).")
    per_problem: int = Field(4, ge=1, le=64, description="New problems written per input problem.")
    answer_key: AnswerKey = Field("math", description="How an answer is read: math (the final number) or text "
                                                      "(the whole short answer). A new problem whose answer gives "
                                                      "none is dropped.")
    max_copy: float = Field(0.95, gt=0, le=1, description="Drop a new problem whose ROUGE-L F1 against the original "
                                                          "is at least this (a copy, not a new problem).")
    min_words: int = Field(5, ge=1, description="Drop new problems shorter than this many words.")
    keep_columns: list[str] = Field(default_factory=list, description="Input columns copied into every record "
                                                                      "(e.g. task_id, for lineage).")


class SimilarProblems(SynthProgram):
    name = "similar_problems"
    config_class = SimilarProblemsConfig

    def __init__(self, config: SimilarProblemsConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.write = dspy.Predict(WriteSimilarProblem)
        self._key = answer_key(self.config.answer_key)
        self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self._seen: set[str] = set()

    def items(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Each problem row, `per_problem` times (variant 0, 1, ...): one item per new problem."""
        for row in rows:
            if "problem" not in row:
                raise KeyError(f"similar_problems: rows need a 'problem' column (got {', '.join(row)}); map one "
                               "with inputs.columns, e.g. {problem: question}")
            kept = {k: row[k] for k in self.config.keep_columns if k in row}
            for variant in range(self.config.per_problem):
                yield {"problem": as_text(row["problem"]), "variant": variant, **kept}

    def inputs(self) -> Iterator[dict[str, Any]]:
        if self.config.inputs is None:
            raise NotImplementedError("similar_problems: set program.inputs (a dataset) or pass rows to generate()")
        yield from self.items(dataset_rows(self.config.inputs))

    async def aforward(self, problem: str, **_: Any) -> dspy.Prediction:
        out = await self.write.acall(problem=problem)
        return dspy.Prediction(new_problem=out.new_problem.strip(), solution=out.solution.strip(),
                               answer=str(out.answer).strip())

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        answer = prediction.answer
        record = {
            "problem": inputs["problem"], "variant": inputs.get("variant", 0),
            "new_problem": prediction.new_problem, "solution": prediction.solution, "answer": answer,
            "answer_key": self._key(answer),
            "messages": [{"role": "user", "content": prediction.new_problem},
                         {"role": "assistant", "content": f"{prediction.solution}\nThe answer is {answer}."}],
        }
        return carry_columns(record, inputs, self.config.keep_columns)

    def accept(self, record: dict[str, Any]) -> str | None:
        new = record["new_problem"]
        if not new:
            return "empty problem"
        if len(new.split()) < self.config.min_words:
            return f"too short ({len(new.split())} words)"
        overlap = self._rouge.score(record["problem"], new)["rougeL"].fmeasure
        if overlap >= self.config.max_copy:
            return f"copies the original problem (ROUGE-L {overlap:.2f} >= {self.config.max_copy})"
        if record["answer_key"] is None:
            return f"no answer in {record['answer']!r} ({self.config.answer_key} answer key)"
        if normal_form(new) in self._seen:
            return "repeats an earlier new problem"
        return None

    def remember(self, record: dict[str, Any]) -> None:
        self._seen.add(normal_form(record["new_problem"]))
