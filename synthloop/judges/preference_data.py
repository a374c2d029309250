"""Preference pairs (prompt, chosen, rejected): from hh-rlhf, from any preference dataset, and from
synthloop's own records ranked by a judge or a verifier (best vs worst of the samples of one prompt).

Prompts and responses may be plain strings or chat messages (TRL's conversational format); the
reward model sees them rendered the hh-rlhf way ("\\n\\nHuman: ...\\n\\nAssistant: ...").
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from synthloop.configs import ConfigError
from synthloop.runs.inputs import DatasetInput, MissingColumnError

_ROLES = {"user": "Human", "human": "Human", "assistant": "Assistant", "system": "System"}
_TURN = "\n\nAssistant:"


class PreferencePair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Any
    chosen: Any
    rejected: Any
    source: str = ""


def render_prompt(prompt: Any) -> str:
    """A prompt as text: strings pass through; chat messages become hh-rlhf style turns ending in 'Assistant:'."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, dict):
        prompt = [prompt]
    parts = [f"\n\n{_ROLES.get(m.get('role', 'user'), m.get('role', 'user').title())}: {m.get('content', '')}"
             for m in prompt]
    return "".join(parts) + _TURN


def render_response(response: Any) -> str:
    """A completion as text: strings pass through; a list of messages becomes their concatenated contents."""
    if isinstance(response, str):
        return response
    if isinstance(response, dict):
        return str(response.get("content", ""))
    return "\n".join(str(m.get("content", "")) for m in response)


def split_hh_dialogue(chosen: str, rejected: str) -> tuple[str, str, str]:
    """hh-rlhf stores two whole dialogues; they share everything up to the last '\\n\\nAssistant:'."""
    cut = chosen.rfind(_TURN)
    prompt = chosen[: cut + len(_TURN)]
    if not rejected.startswith(prompt):
        cut_r = rejected.rfind(_TURN)
        prompt = chosen[: cut + len(_TURN)] if cut_r < 0 else rejected[: cut_r + len(_TURN)]
    return prompt, chosen[len(prompt):].strip(), rejected[len(prompt):].strip()


def held_out(prompt: str, fraction: float, salt: str = "synthloop") -> bool:
    """Deterministic split by a hash of the prompt: the same prompt never lands on both sides."""
    digest = hashlib.sha256(f"{salt}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load_hh_rlhf(path: str | Path, *, split: str = "train", held_out_fraction: float = 0.2,
                 limit: int | None = None) -> list[PreferencePair]:
    """hh-rlhf pairs (a .jsonl or .jsonl.gz of {chosen, rejected}) for `split` 'train', 'held_out' or 'all'.
    Pairs whose two responses are identical are skipped (they carry no preference)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such preference file")
    if split not in ("train", "held_out", "all"):
        raise ValueError(f"split {split!r}: expected train, held_out or all")
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            prompt, chosen, rejected = split_hh_dialogue(row["chosen"], row["rejected"])
            if chosen == rejected:
                continue
            side = "held_out" if held_out(prompt, held_out_fraction) else "train"
            if split in ("all", side):
                out.append(PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, source=f"hh_rlhf:{side}"))
                if limit is not None and len(out) >= limit:
                    break
    return out


class PreferenceRowError(ConfigError):
    """A preference row that cannot be a pair: names the file and the line (one line, for the CLI)."""


def _check_text(value: Any, field: str, where: str) -> None:
    """A prompt or response must be a string, a message dict or a list of message dicts with string contents."""
    if isinstance(value, str):
        return
    messages = [value] if isinstance(value, dict) else value
    if isinstance(messages, list) and messages and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return
    raise PreferenceRowError(f"{where}: {field} is {type(value).__name__} {json.dumps(value, default=str)[:40]}, "
                             "expected a string or chat messages with string contents")


def pairs_from_rows(rows: Iterable[dict[str, Any]], source: str = "") -> Iterator[PreferencePair]:
    """Rows in TRL's preference format: {prompt, chosen, rejected} (strings or messages), or hh-rlhf style
    {chosen, rejected} whole dialogues. A row that is not a pair (a missing field, a response that is not
    text) raises PreferenceRowError naming `source` and the row (rows count from 1, as a .jsonl's lines)."""
    for line, row in enumerate(rows, start=1):
        yield pair_from_row(row, f"{source or 'preference rows'}:{line}", source)


def pair_from_row(row: Any, where: str, source: str = "") -> PreferencePair:
    """One row as a pair, or a PreferenceRowError that starts with `where` (file:line)."""
    if not isinstance(row, dict):
        raise PreferenceRowError(f"{where}: expected an object with prompt/chosen/rejected, got {type(row).__name__}")
    missing = [k for k in ("chosen", "rejected") if k not in row]
    if missing:
        raise PreferenceRowError(f"{where}: missing {' and '.join(missing)} (expected columns prompt/chosen/"
                                 f"rejected; got {', '.join(row) or 'none'})")
    if "prompt" in row:
        for field in ("prompt", "chosen", "rejected"):
            _check_text(row[field], field, where)
        return PreferencePair(prompt=row["prompt"], chosen=row["chosen"], rejected=row["rejected"], source=source)
    for field in ("chosen", "rejected"):
        if not isinstance(row[field], str):
            raise PreferenceRowError(f"{where}: no prompt column, and {field} is {type(row[field]).__name__}, "
                                     "not an hh-rlhf style dialogue string")
    prompt, chosen, rejected = split_hh_dialogue(row["chosen"], row["rejected"])
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, source=source)


def read_pairs(spec: DatasetInput, source: str | None = None) -> list[PreferencePair]:
    """Preference pairs from any dataset `DatasetInput` reads. JSON lines (.jsonl, .jsonl.gz) are parsed here,
    line by line, so a bad row is reported as `file:line` (through `datasets`, a JSON `true` where text was
    expected fails inside Arrow with no line number)."""
    path = Path(spec.path)
    source = source or str(path)
    if not (path.is_file() and [s for s in path.suffixes if s != ".gz"][-1:] == [".jsonl"]):
        return [pair_from_row(row, f"{path}:{i}", source) for i, row in enumerate(spec.rows(), start=1)]
    opener = gzip.open if path.suffix == ".gz" else open
    out: list[PreferencePair] = []
    rows = 0
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            rows += 1
            if rows <= spec.skip:
                continue
            if spec.limit is not None and len(out) >= spec.limit:
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PreferenceRowError(f"{path}:{number}: not JSON ({exc.msg})") from None
            out.append(pair_from_row(spec.map(row) if isinstance(row, dict) else row, f"{path}:{number}", source))
    return out


def split_by_prompt(pairs: Iterable[PreferencePair], fraction: float, salt: str = "synthloop"
                    ) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held out): a pair is held out when `held_out(prompt)`; a prompt never lands on both sides."""
    train: list[PreferencePair] = []
    held: list[PreferencePair] = []
    for pair in pairs:
        (held if fraction > 0 and held_out(render_prompt(pair.prompt), fraction, salt) else train).append(pair)
    return train, held


def _normalize(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def prompt_keys(prompt: Any) -> set[str]:
    """What decontamination compares: the whole prompt and its last user turn, lower-cased, punctuation and
    role markers dropped (an hh-rlhf dialogue and a plain instruction with the same question collide)."""
    text = render_prompt(prompt)
    turns = [t for t in re.split(r"\n\n(?:Human|User|System):", text) if t.strip()]
    last = turns[-1].split("\n\nAssistant:")[0] if turns else text
    keys = {_normalize(text.replace("\n\nAssistant:", " ")), _normalize(last)}
    return {k for k in keys if k}


def decontaminate(pairs: Sequence[PreferencePair], against: Iterable[PreferencePair]
                  ) -> tuple[list[PreferencePair], int]:
    """Pairs whose prompt does not match any prompt of `against` (by `prompt_keys`), and how many were dropped."""
    blocked: set[str] = set()
    for pair in against:
        blocked |= prompt_keys(pair.prompt)
    kept = [p for p in pairs if not prompt_keys(p.prompt) & blocked]
    return kept, len(pairs) - len(kept)


def record_prompt_response(record: dict[str, Any]) -> tuple[Any, str]:
    """A synthloop record's (prompt, response): `messages` (last assistant turn is the response), or
    columns: prompt|instruction|question|task|input, and completion|response|output|answer (the first
    present of each, so a gold `answer` beside a `response` stays a reference)."""
    messages = record.get("messages")
    if messages:
        last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
        if last is not None:
            return messages[:last], str(messages[last].get("content", ""))
    p_key = next((k for k in ("prompt", "instruction", "question", "task", "input") if k in record), None)
    r_key = next((k for k in ("completion", "response", "output", "answer") if k in record and k != p_key), None)
    if p_key is not None and r_key is not None:
        return record[p_key], render_response(record[r_key])
    raise MissingColumnError(f"record {record.get('id', '?')}: no messages and no prompt/response columns "
                   f"(got {', '.join(record)})")


def pairs_from_ranked(records: Sequence[dict[str, Any]], score: Callable[[dict[str, Any]], float | None], *,
                      min_margin: float = 0.0, source: str = "ranked") -> list[PreferencePair]:
    """Best vs worst response per prompt, by `score` (a judge's or a verifier's): the preference pairs
    synthloop's own programs yield. Prompts with one response, or whose best and worst are closer than
    `min_margin` (or tie), give no pair."""
    groups: dict[str, list[tuple[float, Any, str]]] = defaultdict(list)
    for record in records:
        value = score(record)
        if value is None or value != value:  # None or NaN: unscored
            continue
        prompt, response = record_prompt_response(record)
        key = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
        groups[key].append((float(value), prompt, response))
    out = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: r[0])
        (low, prompt, worst), (high, _, best) = rows[0], rows[-1]
        if high - low > min_margin and best != worst:
            out.append(PreferencePair(prompt=prompt, chosen=best, rejected=worst, source=source))
    return out


def is_loop_dir(path: str | Path) -> bool:
    """A loop's directory (or one round of it): judged samples under `round-*/judged/` or `judged/`."""
    path = Path(path)
    return path.is_dir() and (any(path.glob("judged/part-*.jsonl")) or any(path.glob("round-*/judged/part-*.jsonl")))


def judged_samples(path: str | Path) -> Iterator[dict[str, Any]]:
    """One row per judged sample of a loop directory: {prompt (the sampling messages), response, scores, id}.
    A loop writes each task once per round with its N samples and every judge's verdict on each
    (synthloop/loops/judging.py); the samples of one prompt are what `pairs_from_ranked` ranks."""
    from synthloop.runs.jsonl import read_jsonl

    path = Path(path)
    parts = sorted(path.glob("judged/part-*.jsonl")) + sorted(path.glob("round-*/judged/part-*.jsonl"))
    for part in parts:
        for record in read_jsonl(part):
            prompt = record.get("messages") or record.get("prompt")
            for sample in record.get("samples", []):
                if isinstance(sample.get("text"), str):
                    yield {"id": record.get("id"), "prompt": prompt, "response": sample["text"],
                           "scores": sample.get("scores", {}), "reference": record.get("reference")}
