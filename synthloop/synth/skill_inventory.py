"""The skill inventory of Instruct-SkillMix: its own artifact, a YAML file users can read, edit and reuse.

    skills:
      - name: persuasive writing        # shown to the model; rename freely
        description: ""                 # optional; shown to the model next to the name
        count: 12                       # how often extraction named it (or one of its aliases)
        aliases: [persuasion]           # names merged into this one
        topics: [marketing]             # where it came from (topic runs)

`build_inventory(records)` turns skill-extraction records into one: names are normalised, exact
duplicates merged, and near-duplicates ("essay writing" / "writing essays") clustered by
all-MiniLM-L6-v2 cosine similarity (sentence-transformers' community detection); each cluster keeps
its most frequent name. A plain .txt file with one skill per line also loads as an inventory.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+[.):]|skill\s*\d*\s*:)\s*", re.IGNORECASE)
_GENERIC = {"skill", "skills", "none", "n/a", "na", "unknown", "other", "general knowledge", "ai assistant", "str",
            "string", "list", "skill name", "skill names"}


class Skill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    count: int = Field(1, ge=0)
    aliases: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)

    def prompt_text(self) -> str:
        return f"{self.name}: {self.description}" if self.description else self.name


class SkillInventory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skills: list[Skill]
    source: str | None = Field(None, description="What the inventory was built from.")
    settings: dict[str, Any] = Field(default_factory=dict, description="How it was built (clustering threshold...).")

    def names(self) -> list[str]:
        return [s.name for s in self.skills]

    def select(self, min_count: int = 1, max_skills: int | None = None) -> list[Skill]:
        """Skills seen at least `min_count` times, the most frequent first, at most `max_skills`."""
        kept = sorted((s for s in self.skills if s.count >= min_count), key=lambda s: (-s.count, s.name))
        return kept[:max_skills] if max_skills else kept

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = ("# Skill inventory (Instruct-SkillMix stage 1). Edit freely: rename, delete or add skills; a\n"
                  "# description, if given, is shown to the model next to the name. Used by program.skills.\n")
        path.write_text(header + yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
        return path

    @classmethod
    def load(cls, path: str | Path) -> SkillInventory:
        path = Path(path)
        if path.is_dir():
            path = path / "skills.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no skill inventory (build one with `synthloop skills build RUN`)")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".txt":
            names = [normalize_skill(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
            return cls(skills=[Skill(name=n) for n in dict.fromkeys(n for n in names if n)], source=str(path))
        try:
            data = yaml.safe_load(text)
            if isinstance(data, list):  # a bare list of names or skills
                data = {"skills": [{"name": s} if isinstance(s, str) else s for s in data]}
            inventory = cls.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"{path}: not a skill inventory ({first})") from None
        if not inventory.skills:
            raise ValueError(f"{path}: the inventory lists no skills")
        dupes = [n for n, c in Counter(inventory.names()).items() if c > 1]
        if dupes:
            raise ValueError(f"{path}: skill {dupes[0]!r} is listed twice")
        return inventory


def normalize_skill(name: str) -> str:
    """'1. Persuasive_Writing.' -> 'persuasive writing'; '' for names that are not a usable skill."""
    name = _NUMBERING.sub("", str(name))
    name = re.sub(r"[_\-/]+", " ", name.lower())
    name = " ".join(re.sub(r"[,;:!?()\[\]{}\"]", " ", name).split()).strip(" '.")
    words = name.split()
    if not words or len(words) > 6 or len(name) > 60 or name in _GENERIC or not re.fullmatch(r"[a-z0-9 '&+#.]*", name) \
            or not re.search(r"[a-z]{2}", name) or any(re.fullmatch(r"[\d.]+", w) for w in words):
        return ""  # empty, a sentence, code, emoji, file names, numbered copies ("premise 1", "jinja 3.2.0")
    return name


def build_inventory(records: Iterable[dict[str, Any]], *, similarity: float = 0.85, min_count: int = 1,
                    max_skills: int | None = None, embedder: str | None = None,
                    source: str | None = None) -> SkillInventory:
    """Cluster the skill names of extraction records (each with `skills` and maybe `topic`) into an inventory."""
    counts: Counter[str] = Counter()
    topics: defaultdict[str, set[str]] = defaultdict(set)
    for record in records:
        for raw in record.get("skills") or []:
            name = normalize_skill(raw)
            if name:
                counts[name] += 1
                if record.get("topic"):
                    topics[name].add(str(record["topic"]))
    if not counts:
        raise ValueError("no skill names to build an inventory from (did the extraction keep any records?)")
    names = sorted(counts, key=lambda n: (-counts[n], n))
    clusters = _cluster(names, similarity, embedder) if similarity < 1.0 else [[i] for i in range(len(names))]
    skills = []
    for members in clusters:
        ordered = sorted((names[i] for i in members), key=lambda n: (-counts[n], len(n), n))
        skills.append(Skill(name=ordered[0], count=sum(counts[n] for n in ordered), aliases=ordered[1:],
                            topics=sorted(set().union(*(topics[n] for n in ordered)))))
    skills = sorted((s for s in skills if s.count >= min_count), key=lambda s: (-s.count, s.name))
    if max_skills:
        skills = skills[:max_skills]
    settings = {"similarity": similarity, "min_count": min_count, "max_skills": max_skills,
                "embedder": embedder or "all-minilm-l6-v2", "names_seen": len(names), "mentions": sum(counts.values())}
    return SkillInventory(skills=skills, source=source, settings=settings)


def _cluster(names: list[str], similarity: float, embedder: str | None) -> list[list[int]]:
    from sentence_transformers.util import community_detection

    from synthloop.embeddings import DEFAULT_EMBEDDER
    from synthloop.judges.similarity import embed

    vectors = embed(names, embedder or DEFAULT_EMBEDDER)
    clusters = [list(map(int, c)) for c in community_detection(vectors, threshold=similarity, min_community_size=1)]
    seen = {i for c in clusters for i in c}
    return clusters + [[i] for i in range(len(names)) if i not in seen]
