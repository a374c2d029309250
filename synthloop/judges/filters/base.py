"""What every filter shares: records in, records out, and the reason for every record dropped.

A filter sees a list of records (dicts: synthloop records with `messages`, or any dataset rows) and
returns the kept ones plus a `Dropped(record, reason)` per dropped one, in input order. Filters that
need the whole set at once (dedup, diversity) get it; the others go record by record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from synthloop.judges.preference_data import record_prompt_response
from synthloop.runs.inputs import MissingColumnError


@dataclass
class Dropped:
    record: dict[str, Any]
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class FilterResult:
    kept: list[dict[str, Any]]
    dropped: list[Dropped]
    #: anything else the report should carry (e.g. decontamination matches)
    extra: dict[str, Any] = field(default_factory=dict)


def record_text(record: dict[str, Any], field_name: str = "all") -> str:
    """The text a filter looks at: 'all' (every message / the prompt and response), 'response', 'prompt',
    or a column name."""
    if field_name not in ("all", "response", "prompt"):
        if field_name not in record:
            columns = ", ".join(record)
            raise MissingColumnError(f"record {record.get('id', '?')}: no column {field_name!r} (columns: {columns})")
        value = record[field_name]
        return value if isinstance(value, str) else _join(value)
    try:
        prompt, response = record_prompt_response(record)
    except KeyError:
        if field_name == "all" and "text" in record:
            return str(record["text"])
        raise
    if field_name == "response":
        return response
    prompt_text = prompt if isinstance(prompt, str) else _join(prompt)
    return prompt_text if field_name == "prompt" else f"{prompt_text}\n{response}".strip()


def _join(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v.get("content", "")) if isinstance(v, dict) else str(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("content", value))
    return str(value)


def record_id(record: dict[str, Any], index: int) -> Any:
    return record.get("id", index)


class Filter(ABC):
    kind: ClassVar[str]

    @abstractmethod
    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        """Kept records (input order) and the dropped ones with their reasons."""


class RecordFilter(Filter):
    """A filter that decides record by record: implement `reason(record)` (None keeps it)."""

    @abstractmethod
    def reason(self, record: dict[str, Any]) -> str | None: ...

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        kept, dropped = [], []
        for record in records:
            why = self.reason(record)
            if why is None:
                kept.append(record)
            else:
                dropped.append(Dropped(record, why))
        return FilterResult(kept, dropped)
