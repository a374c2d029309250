"""What a judge sees of a record: its prompt, its response and its reference."""

from __future__ import annotations

from typing import Any

from synthloop.judges.base import JudgeItem
from synthloop.judges.preference_data import record_prompt_response, render_prompt
from synthloop.runs.inputs import MissingColumnError


def record_item(record: dict[str, Any], reference_field: str | None = None) -> JudgeItem:
    """The (prompt, response, reference) of one record. The reference is the column `reference_field` (which must
    exist), or by default the record's `reference` column when it has one."""
    prompt, response = record_prompt_response(record)
    if not isinstance(prompt, str):
        prompt = render_prompt(prompt) if prompt else ""
    if reference_field is None:
        reference = record.get("reference")
    elif reference_field in record:
        reference = record[reference_field]
    else:
        raise MissingColumnError(f"record {record.get('id', '?')}: no reference column {reference_field!r}")
    return JudgeItem(prompt=prompt, response=response, reference=reference)
