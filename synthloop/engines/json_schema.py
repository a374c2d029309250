"""Bounding JSON schemas so that constrained output always closes inside the token budget.

Constrained decoding guarantees valid JSON only if generation ends: a string the model never
closes runs into `max_tokens` and is cut off (seen with SmolLM2 via vLLM, and always with random
models). Every unbounded string, number and array gets a bound derived from the budget: a token is
at least one character, so strings of at most `chars` characters fit in `chars` tokens.
"""

from __future__ import annotations

import copy
from typing import Any

#: tokens reserved per field for its key, quotes, separators and whitespace
_FIELD_OVERHEAD = 8
_ARRAY_ITEMS = 8
_INT_BOUND = 10**12


def bound_schema(schema: dict[str, Any], max_tokens: int, max_chars: int | None = None) -> dict[str, Any]:
    """A copy of `schema` whose strings, numbers and arrays are bounded to fit `max_tokens`."""
    schema = copy.deepcopy(schema)
    defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
    slots = max(1, _count_slots(schema, defs, depth=0))
    chars = max_chars or max(8, (max_tokens - 16 - _FIELD_OVERHEAD * slots) // slots)
    _apply(schema, chars)
    for sub in list(schema.get("$defs", {}).values()) + list(schema.get("definitions", {}).values()):
        _apply(sub, chars)
    return schema


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in defs:
        return defs[ref.rsplit("/", 1)[-1]]
    return node


def _count_slots(node: Any, defs: dict[str, Any], depth: int) -> int:
    """How many free-text values the schema can hold (each shares the budget)."""
    if not isinstance(node, dict) or depth > 8:
        return 0
    node = _resolve(node, defs)
    kind = node.get("type")
    if kind == "string" and "enum" not in node and "const" not in node:
        return 1
    if kind == "object" or "properties" in node:
        return sum(_count_slots(v, defs, depth + 1) for v in node.get("properties", {}).values()) or 0
    if kind == "array":
        return node.get("maxItems", _ARRAY_ITEMS) * max(1, _count_slots(node.get("items", {}), defs, depth + 1))
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            return max((_count_slots(v, defs, depth + 1) for v in node[key]), default=0)
    return 0


def _apply(node: Any, chars: int) -> None:
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    # a pattern or format bounds a string by itself, and xgrammar cannot combine either with a length bound
    if kind == "string" and not {"enum", "const", "pattern", "format"} & node.keys():
        node["maxLength"] = min(node.get("maxLength", chars), chars)
    elif kind == "integer":
        node.setdefault("minimum", -_INT_BOUND)
        node.setdefault("maximum", _INT_BOUND)
    elif kind == "number":
        node.setdefault("minimum", -float(_INT_BOUND))
        node.setdefault("maximum", float(_INT_BOUND))
    elif kind == "array":
        node.setdefault("maxItems", _ARRAY_ITEMS)
    for key in ("properties",):
        for sub in node.get(key, {}).values():
            _apply(sub, chars)
    if isinstance(node.get("items"), dict):
        _apply(node["items"], chars)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            _apply(sub, chars)
