"""Run filters in order over a dataset into a run directory, with a report.

    runs/<name>/
      records/part-00000.jsonl   the kept records (input order; judge scores added under `scores`)
      filtered.jsonl             every dropped record: {id, filter, reason, detail, record}
      report.json                counts in/out per filter, reasons counted, decontamination matches
      cache.sqlite               an LLM judge's calls (a killed run resumes without re-asking the model)

The output is a synthloop run: `synthloop runs export`, `inputs.path` of the next stage, etc.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field

from synthloop.configs import RUNTIME, Config
from synthloop.judges.filters.base import Filter
from synthloop.judges.filters.decontaminate import Decontaminate, DecontaminateConfig
from synthloop.judges.filters.dedup import ExactDedup, ExactDedupConfig, NearDedup, NearDedupConfig
from synthloop.judges.filters.diversity import Diversity, DiversityConfig
from synthloop.judges.filters.repetition import RepetitionConfig, RepetitionFilter
from synthloop.judges.filters.score import JudgeThreshold, JudgeThresholdConfig
from synthloop.judges.filters.similarity import SimilarityConfig, SimilarityFilter
from synthloop.judges.filters.simple import LengthConfig, LengthFilter, RefusalConfig, RefusalFilter
from synthloop.runs.inputs import DatasetInput
from synthloop.runs.jsonl import AppendLog, atomic_write
from synthloop.runs.run_dir import ResumePolicy, RunDir

FilterSpec = Annotated[
    Union[ExactDedupConfig, NearDedupConfig, LengthConfig, RefusalConfig,  # noqa: UP007 - a discriminated union
          DecontaminateConfig, DiversityConfig, JudgeThresholdConfig, RepetitionConfig, SimilarityConfig],
    Field(discriminator="kind"),
]


class FilterRunConfig(Config):
    name: str | None = Field(None, description="Output run name (its directory under output_dir); default: the "
                                               "config file's name.", json_schema_extra=RUNTIME)
    output_dir: Path = Field(Path("runs"), description="Where run directories go.", json_schema_extra=RUNTIME)
    input: DatasetInput = Field(description="The records to filter: a run directory or any dataset file.")
    filters: list[FilterSpec] = Field(description="Filters, applied in order; `kind` picks each one: exact_dedup, "
                                                  "near_dedup, length, refusal, decontaminate, diversity, "
                                                  "judge_threshold, repetition, similarity.")


class FilterReport(BaseModel):
    run: str
    input: str
    counts: dict[str, int]
    filters: list[dict[str, Any]]
    seconds: float


def build_filter(spec: BaseModel, *, cache_path: Path | None = None, log=None) -> tuple[Filter, Callable[[], None]]:
    """A filter from its config, and what to call when done (closes a judge's engine)."""
    if isinstance(spec, ExactDedupConfig):
        return ExactDedup(spec), lambda: None
    if isinstance(spec, NearDedupConfig):
        return NearDedup(spec), lambda: None
    if isinstance(spec, LengthConfig):
        return LengthFilter(spec), lambda: None
    if isinstance(spec, RefusalConfig):
        return RefusalFilter(spec), lambda: None
    if isinstance(spec, DecontaminateConfig):
        return Decontaminate(spec), lambda: None
    if isinstance(spec, DiversityConfig):
        return Diversity(spec), lambda: None
    if isinstance(spec, RepetitionConfig):
        return RepetitionFilter(spec), lambda: None
    if isinstance(spec, SimilarityConfig):
        return SimilarityFilter(spec), lambda: None
    if isinstance(spec, JudgeThresholdConfig):
        from synthloop.judges.panel import Panel

        panel = Panel.from_specs([spec.judge], cache_path=cache_path, where="judge_threshold.judge", log=log)
        return JudgeThreshold(spec, panel), panel.close
    raise TypeError(f"unknown filter config {type(spec).__name__}")


def reason_kind(reason: str) -> str:
    return reason.split(":")[0].split("(")[0].strip()


def run_filters(records: Iterable[dict[str, Any]] | DatasetInput, filters: Sequence[BaseModel], out: str | Path, *,
                input_name: str = "records", resume: ResumePolicy = "if-unchanged", config_yaml: str | None = None,
                log: Callable[[str], None] | None = None) -> FilterReport:
    """Apply `filters` in order; write kept records, dropped ones with reasons, and report.json to `out`."""
    started = time.time()
    source = records.rows() if isinstance(records, DatasetInput) else records
    rows = [r if "id" in r else {"id": i, **r} for i, r in enumerate(source)]
    identity = {"input": input_name, "filters": [f.model_dump(mode="json") for f in filters]}
    run = RunDir.open(out, identity=identity, kind="filter", resume=resume, config_yaml=config_yaml)
    for part in run.record_parts():  # filtering is deterministic: a rerun rewrites its outputs
        part.unlink()
    run.filtered_path.unlink(missing_ok=True)
    stages: list[dict[str, Any]] = []
    current = rows
    with AppendLog(run.filtered_path) as dropped_log:
        for spec in filters:
            if log:
                log(f"{spec.kind}: {len(current)} records in")
            flt, close = build_filter(spec, cache_path=run.cache_path, log=log)
            try:
                result = flt.apply(current)
            finally:
                close()
            for d in result.dropped:
                dropped_log.write({"id": d.record.get("id"), "filter": spec.kind, "reason": d.reason,
                                   "detail": d.detail, "record": d.record})
            reasons = Counter(reason_kind(d.reason) for d in result.dropped)
            stages.append({"filter": spec.kind, "in": len(current), "out": len(result.kept),
                           "dropped": len(result.dropped), "reasons": dict(reasons.most_common()), **result.extra})
            current = result.kept
    with AppendLog(run.records_dir / "part-00000.jsonl") as kept_log:
        for record in current:
            kept_log.write(record)
    counts = {"in": len(rows), "out": len(current), "dropped": len(rows) - len(current)}
    report = FilterReport(run=str(run.path), input=input_name, counts=counts, filters=stages,
                          seconds=round(time.time() - started, 2))
    atomic_write(run.path / "report.json", json.dumps(report.model_dump(), indent=2, default=str))
    run.update_manifest(status="completed", counts={"kept": len(current), "filtered": counts["dropped"]})
    run.close()
    return report
