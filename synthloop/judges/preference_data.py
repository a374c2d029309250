"""Preference pairs (prompt, chosen, rejected): from hh-rlhf, from any preference dataset, and from
synthloop's own records ranked by a judge or a verifier (best vs worst of the samples of one prompt).

Prompts and responses may be plain strings or chat messages (TRL's conversational format); the
reward model sees them rendered the hh-rlhf way ("\\n\\nHuman: ...\\n\\nAssistant: ...").
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

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


def pairs_from_rows(rows: Iterable[dict[str, Any]], source: str = "") -> Iterator[PreferencePair]:
    """Rows in TRL's preference format: {prompt, chosen, rejected} (strings or messages), or hh-rlhf style
    {chosen, rejected} whole dialogues."""
    for row in rows:
        if "prompt" in row:
            yield PreferencePair(prompt=row["prompt"], chosen=row["chosen"], rejected=row["rejected"], source=source)
        elif isinstance(row.get("chosen"), str):
            prompt, chosen, rejected = split_hh_dialogue(row["chosen"], row["rejected"])
            yield PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected, source=source)
        else:
            raise KeyError(f"{source or 'preference rows'}: expected columns prompt/chosen/rejected "
                           f"(got {', '.join(row)})")


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
    raise KeyError(f"record {record.get('id', '?')}: no messages and no prompt/response columns "
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
