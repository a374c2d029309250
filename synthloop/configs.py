"""Configs: pydantic models loaded from YAML, with `--set path.to.key=value` overrides.

A bad file or value is reported in one line naming the file, the key and what was expected
(`ConfigError`); the CLI prints that line and exits, never a traceback.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)


#: mark a field that changes how a run executes but not what it produces: `Field(..., json_schema_extra=RUNTIME)`
RUNTIME = {"affects_output": False}


class ConfigError(ValueError):
    """A config problem, phrased as the one line the user needs."""


class Config(BaseModel):
    """Base of every config model: unknown keys are errors, and fields can say they do not affect outputs.

    A field declared with `json_schema_extra={"affects_output": False}` (e.g. concurrency, the number
    of records wanted) is left out of `output_hash()`, so changing it does not invalidate a run.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def output_hash(self) -> str:
        return hashlib.sha256(json.dumps(output_view(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_view(value: Any) -> Any:
    if isinstance(value, BaseModel):
        out = {}
        for name, field in type(value).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if extra.get("affects_output", True):
                out[name] = output_view(getattr(value, name))
        return out
    if isinstance(value, dict):
        return {str(k): output_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [output_view(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=3` -> (["a", "b"], 3). The value is read as YAML, so numbers, booleans and lists work."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set engine.max_tokens=256")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: the key must be a dotted path like engine.model")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{part}' holds a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML config must be UTF-8 text)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level, got {type(data).__name__}")
    return data


def load_config(
    model: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    data: dict[str, Any] | None = None,
) -> T:
    """Read YAML (or take `data`), apply `--set` overrides, validate into `model`."""
    source = str(path) if path is not None else "config"
    raw = read_yaml(path) if path is not None else dict(data or {})
    raw = apply_overrides(raw, list(overrides or []))
    return validate(model, raw, source)


def validate(model: type[T], raw: dict[str, Any], source: str) -> T:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, source)) from None


def format_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        hint = difflib.get_close_matches(loc[-1], known, n=1)
        expected = f"did you mean '{hint[0]}'?" if hint else f"expected one of: {', '.join(sorted(known))}"
        line = f"{source}: {key}: unknown key; {expected}"
    elif kind == "missing":
        line = f"{source}: {key}: required key is missing"
    else:
        got = first.get("input")
        msg = first["msg"].removeprefix("Value error, ")
        line = f"{source}: {key}: {msg[0].lower()}{msg[1:]}"
        if "credential" not in msg and not isinstance(got, dict | list):  # never echo a secret back
            line += f" (got {got!r})"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


def _known_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    """The keys a mapping at `path` may hold (for did-you-mean), walking lists (`judges.0`) and unions picked by
    their `kind` (`judges.0.llm`), as pydantic's error locations name them."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    models = _models(current)
    return list(models[0].model_fields) if len(models) == 1 else []


def _step(annotation: Any, part: str) -> Any:
    for model in _models(annotation):
        if part in model.model_fields:
            return model.model_fields[part].annotation
        kind = model.model_fields.get("kind")
        if kind is not None and kind.default == part:
            return model
    if part.isdigit() or part == "[key]":
        for arg in getattr(annotation, "__args__", ()) or ():
            return arg if getattr(annotation, "__origin__", None) in (list, tuple, set) else _step(arg, part)
    return None


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Annotated, Optional and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if getattr(annotation, "__origin__", None) in (list, tuple, set, dict):
        return []
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        out += [m for m in _models(arg) if m not in out]
    meta = getattr(annotation, "__metadata__", None)
    if meta is not None and hasattr(annotation, "__origin__"):
        out += [m for m in _models(annotation.__origin__) if m not in out]
    return out


def dump_yaml(config: BaseModel) -> str:
    return yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False, allow_unicode=True)
