"""What a synthesis program is: a DSPy module that also knows its inputs and its records.

    class MyProgram(SynthProgram):
        config_class = MyConfig                        # a BaseProgramConfig; its fields document the knobs
        def inputs(self): yield {"passage": ...}       # streamed, item by item
        async def aforward(self, passage): ...         # plain DSPy: wire sub-predictors (`forward` derives from it)
        def to_record(self, inputs, pred): return {"messages": [...]}

`synthloop.generate(program, engine=..., run=...)` runs it over its inputs with the engine kept
full: every item attempt is one `await program.arun(inputs, call)`, the same call for every program
(a DSPy program runs its `aforward` under the run's LM; `synth.chat.ChatProgram`, the prompt -> parse
primitive, sends its chat request to the engine itself). `accept`/`remember` let a program filter
records against what it already kept (e.g. the self-instruct ROUGE-L novelty filter), consistently
across resumes.

Any program can be optimized by DSPy's optimizers (`synthloop compile`, `synthloop.synth.compile`);
`config.compiled` then names the saved state (demos, instructions), loaded when the program is built.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import dspy
from pydantic import BaseModel, ConfigDict, Field

from synthloop.engines.base import Engine, run_sync
from synthloop.engines.types import Sampling
from synthloop.judges.base import JudgeItem
from synthloop.runs.fingerprint import config_files


class BaseProgramConfig(BaseModel):
    """Base of every program's config (`program:` in a generate config)."""

    model_config = ConfigDict(extra="forbid")

    compiled: Path | None = Field(
        None,
        description="A compiled program (`program.json` from `synthloop compile`, or its run directory): its "
        "few-shot demos and instructions replace the defaults. It must come from the same kind of program.",
    )


class _LoadsCompiled(type(dspy.Module)):
    # DSPy builds modules through its own metaclass; loading a compiled state needs the predictors that the
    # subclass's __init__ creates, so it happens here, after every __init__ has run.
    def __call__(cls, *args, **kwargs):
        program = super().__call__(*args, **kwargs)
        path = getattr(program.config, "compiled", None)
        if path is not None:
            load_compiled(program, Path(path))
        return program


@dataclass
class ProgramCall:
    """What one attempt of one item runs with (the runner builds it): the engine (behind the run's request cache),
    the run's sampling, the attempt's seed, and the DSPy LM and adapter over that engine, built on first use."""

    engine: Engine
    sampling: Sampling
    seed: int
    attempt: int
    dspy_settings: Callable[[], tuple[dspy.LM, dspy.Adapter]] = field(repr=False)


class SynthProgram(dspy.Module, metaclass=_LoadsCompiled):
    name: ClassVar[str]
    config_class: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel | None = None, **overrides: Any):
        super().__init__()
        if config is None:
            config = self.config_class(**overrides)
        elif overrides:
            config = self.config_class.model_validate({**config.model_dump(), **overrides})
        self.config = config

    def describe(self) -> dict[str, Any]:
        """The program's identity in a run's resume hash: its config, the content of every file the config names
        (input datasets, seed tasks: edited in place, they make another run) and what each predictor sends the
        model (signature, instructions, demos: an edited prompt is another run too)."""
        out = {"name": self.name, "config": self.config.model_dump(mode="json")}
        compiled = getattr(self.config, "compiled", None)
        if compiled is not None:  # the file's content decides the outputs, not its name
            out["compiled_sha256"] = hashlib.sha256(compiled_path(Path(compiled)).read_bytes()).hexdigest()[:16]
        files = config_files(self.config, skip=frozenset({"compiled"}))
        if files:
            out["files_sha256"] = files
        prompts = {name: hashlib.sha256(json.dumps(_prompt_of(predictor), sort_keys=True, default=str).encode())
                   .hexdigest()[:16] for name, predictor in self.named_predictors()}
        if prompts:  # by predictor: a refusal names the prompt that changed
            out["prompts_sha256"] = prompts
        return out

    def inputs(self) -> Iterator[dict[str, Any]]:
        """The items to run on, in a fixed order (item i must be the same on every run)."""
        raise NotImplementedError(f"{type(self).__name__} takes its inputs from the caller")

    def check_input(self, inputs: dict[str, Any]) -> None:
        """Raise a one-line `ConfigError` if the program cannot use this input at all (checked on the first input
        before an engine starts, so a wrong column fails at once instead of failing every item)."""

    async def arun(self, inputs: dict[str, Any], call: ProgramCall) -> dict[str, Any]:
        """One attempt at one item -> its record (without `id` and `provenance`, which the runner adds). DSPy's
        call history and trace are off: each keeps every call (up to 10,000) in memory."""
        lm, adapter = call.dspy_settings()
        with dspy.context(lm=lm, adapter=adapter, disable_history=True, trace=None):
            prediction = await self.acall(**inputs)
        return self.to_record(inputs, prediction)

    def forward(self, *args: Any, **inputs: Any) -> dspy.Prediction:
        """The sync call is the async program run to completion: programs write `aforward` only."""
        return run_sync(lambda: self.aforward(*args, **inputs))

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        return {**inputs, **prediction.toDict()}

    def accept(self, record: dict[str, Any]) -> str | None:
        """None to keep the record, or the reason it is dropped."""
        return None

    def remember(self, record: dict[str, Any]) -> None:
        """Called for every kept record, including those already on disk when a run resumes."""

    def judge_item(self, record: dict[str, Any], reference: Any = None) -> JudgeItem:
        """What a judge sees of a record (compiling scores programs this way): by default the last user
        message as the prompt and the last assistant message as the response."""
        messages = record.get("messages") or []
        prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        response = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
        return JudgeItem(prompt=prompt, response=response, reference=reference)


def _prompt_of(predictor: Any) -> dict[str, Any]:
    """What a predictor sends the model, apart from its inputs: the signature (field names, types, prefixes and
    descriptions, the instructions) and its demos."""
    signature = predictor.signature
    fields = {name: {"io": field.json_schema_extra.get("__dspy_field_type"), "type": repr(field.annotation),
                     "prefix": field.json_schema_extra.get("prefix"), "desc": field.json_schema_extra.get("desc")}
              for name, field in signature.fields.items()}
    demos = [demo.toDict() if hasattr(demo, "toDict") else demo for demo in getattr(predictor, "demos", [])]
    return {"instructions": signature.instructions, "fields": fields, "demos": demos}


def compiled_path(path: Path) -> Path:
    """`program.json` itself, or the compile run directory that holds it."""
    path = Path(path)
    if path.is_dir():
        path = path / "program.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no compiled program here (run `synthloop compile` first)")
    return path


def load_compiled(program: SynthProgram, path: Path) -> list[str]:
    """Load a state saved by `synthloop compile` into `program` (same kind of program). Predictors the file
    has no state for (e.g. a task type added after compiling) keep their defaults. Returns those loaded."""
    path = compiled_path(path)
    state = json.loads(path.read_text())
    meta = state.get("synthloop", {})
    if meta.get("program") not in (None, program.name):
        raise ValueError(f"{path}: compiled for program {meta['program']!r}, not {program.name!r}")
    loaded = []
    for name, predictor in program.named_predictors():
        if name in state:
            predictor.load_state(state[name])
            loaded.append(name)
    if not loaded:
        saved = ", ".join(k for k in state if k not in ("metadata", "synthloop"))
        raise ValueError(f"{path}: none of this program's predictors was compiled (the file has: {saved})")
    program.compiled_predictors = loaded
    return loaded


def as_text(value: Any) -> str:
    """A text field from any dataset column: a string, a list of strings (joined), or chat messages."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, dict) and "content" in v for v in value):
            return "\n\n".join(str(v["content"]).strip() for v in value)
        return " ".join(as_text(v) for v in value).strip()
    return str(value).strip()


def clip(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` at a sentence (else word) boundary."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("? "), cut.rfind("! "))
    if end > max_chars // 2:
        return cut[: end + 1]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


#: what small models copy from the prompt instead of answering: template slots ({task}, [name], [[ ## x ## ]])
#: and the adapter's own format instructions ("a JSON object with the keys ...")
PROMPT_ECHO = re.compile(r"\{[a-z_]+\}|\[[a-z_]+\]|\[\[ ## |\bjson object\b|\bwith the keys\b|^\s*your task\b",
                         re.IGNORECASE)


def ngram_overlap(text: str, source: str, n: int = 8) -> float:
    """Share of `text`'s word n-grams found in `source` (1.0: copied; near 0: written anew)."""
    words, src = text.lower().split(), source.lower().split()
    grams = {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    if not grams:
        return 0.0
    return len(grams & {tuple(src[i:i + n]) for i in range(len(src) - n + 1)}) / len(grams)


#: record keys the runner owns; an input column of that name is carried as `input_<name>`
_RESERVED = {"id", "provenance"}


def carry_columns(record: dict[str, Any], inputs: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """`record` plus the input columns `names` (lineage, e.g. a source id or SkillMix skills), never overwriting
    the record's own keys or the runner's (`id`, `provenance`): those arrive as `input_<name>`."""
    out = dict(record)
    for name in names:
        if name in inputs:
            out[f"input_{name}" if name in _RESERVED or name in record else name] = inputs[name]
    return out


def dataset_rows(inputs: Any) -> Iterator[dict[str, Any]]:
    """The rows of a `DatasetInput`; a bad path, format or column is a one-line config error."""
    from synthloop.configs import ConfigError

    try:
        yield from inputs.rows()
    except ConfigError:
        raise
    except (KeyError, ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"program.inputs: {exc.args[0] if exc.args else exc}") from None


def expand_builtins(value: Any, builtins: dict[str, Any], what: str, mapping_hint: str) -> Any:
    """A config list whose items are built-in names or full mappings: names become their built-in entries.
    Used as a pydantic `mode="before"` validator body (rewrite styles, task types)."""
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, str):
            if item not in builtins:
                raise ValueError(f"unknown {what} {item!r}; built-in: {', '.join(builtins)} (or give a mapping with "
                                 f"{mapping_hint})")
            item = builtins[item]
        out.append(item)
    if not out:
        raise ValueError(f"give at least one {what}")
    return out


def text_rows(inputs: Any, column: str, min_chars: int,
              keep_columns: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(text of `column`, the kept columns) for each input row long enough; a missing column is a `ConfigError`."""
    from synthloop.configs import ConfigError

    for row in dataset_rows(inputs):
        if column not in row:
            raise ConfigError(f"{inputs.path}: no '{column}' column; map one with "
                              f"inputs.columns: {{{column}: <column>}} (columns: {', '.join(row)})")
        text = as_text(row[column])
        if len(text) >= min_chars:
            yield text, {k: row[k] for k in keep_columns if k in row}
