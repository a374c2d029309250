"""What the loopback OpenAI server answers: seeded text that follows the requested format (a value valid
against a `json_schema`, or DSPy's ChatAdapter / JSONAdapter fields), with token counts and finish reasons."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from typing import Any

_CHAT_FIELDS = re.compile(r"\[\[ ## (\w+) ## \]\]`?(?: \(must be formatted as a valid Python ([\w\[\], .]+)\))?")
_JSON_FIELDS = re.compile(r"following order of fields: (.*?)\.\s*$", re.MULTILINE)
_JSON_FIELD = re.compile(r"`(\w+)`(?: \(must be formatted as a valid Python ([\w\[\], .]+)\))?")


def _digest(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(json.dumps(parts, default=str).encode(), digest_size=8).digest(), "little")


def _instance(schema: dict[str, Any], rng: random.Random, words: list[str], defs: dict[str, Any], depth: int = 0):
    """A small value valid against `schema`. Hand-written (no library does "minimal, seeded, within
    maxLength") and limited to what structured-output schemas use: objects, arrays, scalars, enums, refs."""
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _instance(options[0], rng, words, defs, depth + 1)
    if "allOf" in schema:
        return _instance({k: v for s in schema["allOf"] for k, v in s.items()}, rng, words, defs, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        if depth > 6:
            return {}
        return {k: _instance(v, rng, words, defs, depth + 1) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        count = max(schema.get("minItems", 1), min(2, schema.get("maxItems", 2)))
        return [_instance(schema.get("items", {}), rng, words, defs, depth + 1) for _ in range(count)]
    if kind == "integer":
        low, high = schema.get("minimum", 0), schema.get("maximum", 100)
        return rng.randint(int(max(low, min(high, 0))), int(min(high, max(low, 0) + 100)))
    if kind == "number":
        low, high = schema.get("minimum", 0.0), schema.get("maximum", 1.0)
        return round(rng.uniform(max(low, min(high, 0.0)), min(high, max(low, 0.0) + 1.0)), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    text = " ".join(rng.choice(words) for _ in range(8))
    return text[: schema.get("maxLength", len(text))].strip() or "x"


def _typed(kind: str | None, rng: random.Random, text: str) -> Any:
    """A value of a DSPy field type (the annotation name DSPy prints in its prompts)."""
    kind = (kind or "str").strip()
    if kind == "int":
        return rng.randint(0, 100)
    if kind == "float":
        return round(rng.random(), 3)
    if kind == "bool":
        return True
    if kind.startswith("list"):
        return [text]
    if kind.startswith("dict"):
        return {}
    return text


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def content(body: dict[str, Any], k: int, garbage: bool) -> str:
    """Choice k's text: seeded from the messages; valid against a json_schema, or in DSPy's Chat/JSON format."""
    messages = body.get("messages") or [{}]
    last = str(messages[-1].get("content", ""))
    rng = random.Random(_digest(messages, body.get("seed"), k, body.get("temperature")))
    words = [w for w in re.findall(r"[A-Za-z]{3,}", last)][:50] or ["alpha", "beta", "gamma", "delta"]
    if garbage:
        return "I would rather not follow any format today."
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
        return json.dumps(_instance(schema, rng, words, defs))
    text = " ".join(rng.choice(words) for _ in range(12))
    if "Respond with the corresponding output fields" in last:  # DSPy ChatAdapter
        tail = last.split("Respond with the corresponding output fields", 1)[1]
        fields = [(n, t) for n, t in _CHAT_FIELDS.findall(tail) if n != "completed"]
        parts = [f"[[ ## {name} ## ]]\n{_as_text(_typed(kind, rng, text))}" for name, kind in fields]
        return "\n\n".join([*parts, "[[ ## completed ## ]]"])
    found = _JSON_FIELDS.search(last)
    if found or fmt.get("type") == "json_object":  # DSPy JSONAdapter without a schema
        fields = _JSON_FIELD.findall(found.group(1)) if found else [("answer", "")]
        return json.dumps({name: _typed(kind, rng, text) for name, kind in fields})
    return text


def completion(body: dict[str, Any], *, model: str, honour_n: bool, number: int, garbage: bool) -> dict[str, Any]:
    """A chat.completion body for an OpenAI request: `n` seeded choices (one unless `honour_n`), usage, finish."""
    n = int(body.get("n") or 1) if honour_n else 1
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or 256
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
    choices, completion_tokens = [], 0
    for k in range(n):
        text = content(body, k, garbage)
        tokens = math.ceil(len(text) / 4)  # the usual 4-characters-per-token estimate
        finish = "stop"
        if tokens > max_tokens:
            text, tokens, finish = text[: max_tokens * 4], max_tokens, "length"
        completion_tokens += tokens
        choices.append({"index": k, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                        "logprobs": None})
    prompt_tokens = math.ceil(prompt_chars / 4)
    return {"id": f"chatcmpl-{number}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", model), "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}
