"""What made a run, read back from its directory: the models, the judges, the source files and their licences.

Used by the dataset card of `runs export --format hf` and by `synthloop report`. Everything comes from files
the run wrote (config.yaml, identity.json, the records' provenance); nothing is imported from the code that
made it, so a run made by an older synthloop still reads.

A source's licence is known when one of these says it, nearest first:
  - a dataset card next to it (README.md with YAML front matter `license:`, the Hugging Face convention);
  - a markdown table in a README.md of its folder or the two above, with a column whose header mentions the
    licence and a row whose first cell names the file (path relative to that README, or its file name);
  - for a run directory (a filter's input, say): the licences of that run's own sources.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from synthloop.runs.run_dir import RunDir

#: config keys that hold data files (besides any string ending in a data suffix)
_PATH_KEYS = {"path", "paths", "seed_tasks", "inputs", "file", "files", "documents", "data", "eval_sets"}
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".arrow", ".txt", ".gz")
#: subtrees that are not data sources: where outputs go, model checkpoints, compiled programs, judge artifacts
_NOT_SOURCES = {"output_dir", "name", "engine", "compiled", "factory", "judge", "judges", "model"}


def read_config(run: RunDir) -> dict[str, Any]:
    """The run's resolved config (config.yaml) as a dict; {} when it has none or it does not parse."""
    path = run.path / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_judge(spec: Any) -> str:
    """One line for a judge spec of any config (`judge:`, `judges:` items, filter judges)."""
    if not isinstance(spec, dict):
        return str(spec)
    kind = str(spec.get("kind", "judge"))
    engine = spec.get("engine") if isinstance(spec.get("engine"), dict) else {}
    what = next((str(spec[k]) for k in ("verifier", "factory", "path", "model") if spec.get(k)), None)
    if what is None and engine.get("model") and kind in ("llm", "generative"):
        what = f"{engine['model']} ({engine.get('kind', 'engine')})"
    bounds = ", ".join(f"{k} {spec[k]}" for k in ("min_score", "max_score", "weight") if spec.get(k) is not None)
    return kind + (f": {what}" if what else "") + (f" ({bounds})" if bounds else "")


def _walk(value: Any, key: str = "") -> Any:
    """(key, value) of every leaf and dict under `value`, depth first."""
    yield key, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)


def config_judges(config: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for key, value in _walk(config):
        if key == "judge" and isinstance(value, dict):
            found.append(describe_judge(value))
        elif key == "judges" and isinstance(value, list):
            found.extend(describe_judge(v) for v in value)
    return list(dict.fromkeys(found))


def config_models(config: dict[str, Any]) -> list[str]:
    """Models of the engines that generated (judges' engines are the judges' business)."""
    models: list[str] = []

    def visit(value: Any, key: str) -> None:
        if key in ("judge", "judges"):
            return
        if isinstance(value, dict):
            if key == "engine" and value.get("model"):
                models.append(str(value["model"]))
            for k, v in value.items():
                visit(v, str(k))
        elif isinstance(value, list):
            for v in value:
                visit(v, key)

    visit(config, "")
    return list(dict.fromkeys(models))


def config_sources(config: dict[str, Any]) -> list[str]:
    sources: list[str] = []

    def visit(value: Any, key: str) -> None:
        if key in _NOT_SOURCES:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, str(k))
        elif isinstance(value, list):
            for v in value:
                visit(v, key)
        elif isinstance(value, str) and value and (key in _PATH_KEYS or value.endswith(_DATA_SUFFIXES)):
            sources.append(value)

    visit(config, "")
    return list(dict.fromkeys(sources))


def _card_licence(readme: Path) -> str | None:
    text = readme.read_text(errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)
    try:
        meta = yaml.safe_load(front[1]) if len(front) == 3 else None
    except yaml.YAMLError:
        return None
    value = meta.get("license") if isinstance(meta, dict) else None
    return ", ".join(map(str, value)) if isinstance(value, list) else (str(value) if value else None)


def _cells(line: str) -> list[str]:
    return [c.strip().strip("`").strip() for c in line.strip().strip("|").split("|")]


def _table_licence(readme: Path, target: Path) -> str | None:
    """The licence cell of the row naming `target` in a markdown table of `readme`."""
    try:
        names = {str(target.relative_to(readme.parent)), target.name}
    except ValueError:
        return None
    column: int | None = None
    header = False
    for line in readme.read_text(errors="replace").splitlines():
        if not line.lstrip().startswith("|"):
            header, column = False, None
            continue
        cells = _cells(line)
        if not header:  # the first line of a table names its columns
            header, column = True, next((i for i, c in enumerate(cells) if "licen" in c.lower()), None)
        elif column is not None and column < len(cells) and cells[0] in names:
            return cells[column].replace("**", "").strip() or None
    return None


def source_licence(source: str | Path, depth: int = 0) -> str | None:
    """The licence of a data source where a file near it says so (see the module docstring), else None."""
    path = Path(source).expanduser()
    if not path.exists():
        return None
    path = path.resolve()
    if RunDir(path).exists():
        if depth >= 2:
            return None
        licences = {source_licence(s, depth + 1) for s in config_sources(read_config(RunDir(path)))}
        known = sorted(x for x in licences if x)
        return "; ".join(known) if known and None not in licences else None
    folder = path if path.is_dir() else path.parent
    card = folder / "README.md"
    if card.is_file() and (licence := _card_licence(card)):
        return licence
    for parent in itertools.islice([folder, *folder.parents], 3):
        readme = parent / "README.md"
        if readme.is_file() and (licence := _table_licence(readme, path)):
            return licence
    return None


def record_models(run: RunDir, limit: int = 2000) -> list[str]:
    """Models named in the provenance of the run's first records (kept and dropped)."""
    rows = itertools.chain(itertools.islice(run.iter_records(), limit),
                           (r.get("record") or {} for r in itertools.islice(run.iter_filtered(), limit)))
    found = [str(r["provenance"]["model"]) for r in rows
             if isinstance(r.get("provenance"), dict) and r["provenance"].get("model")]
    return list(dict.fromkeys(found))


def run_lineage(run: RunDir) -> dict[str, Any]:
    """{kind, program, models, judges, sources: [{path, licence}], identity_hash} of a run directory."""
    config = read_config(run)
    manifest = run.manifest() if run.exists() else {}
    identity_path = run.path / "identity.json"
    identity = json.loads(identity_path.read_text()) if identity_path.is_file() else {}
    program = ((identity.get("program") or {}).get("name") or (config.get("program") or {}).get("kind")
               or (config.get("recipe") or {}).get("kind"))
    engine = identity.get("engine") if isinstance(identity.get("engine"), dict) else {}
    models = list(dict.fromkeys([*([str(engine["model"])] if engine.get("model") else []),
                                 *config_models(config), *record_models(run)]))
    return {
        "kind": manifest.get("kind"),
        "program": program,
        "models": models,
        "judges": config_judges(config),
        "sources": [{"path": s, "licence": source_licence(s)} for s in config_sources(config)],
        "identity_hash": manifest.get("identity_hash"),
    }


def hf_licence(licences: list[str | None]) -> str | None:
    """The Hugging Face `license:` id when every source has the same known licence ('Apache-2.0' ->
    'apache-2.0', 'CC BY-NC 4.0 (data), check' -> 'cc-by-nc-4.0'); None when unknown or mixed."""
    ids = set()
    for text in licences:
        if not text:
            return None
        head = re.split(r"[(,;]", text)[0].strip().strip("*").strip()
        ids.add(re.sub(r"\s+", "-", head.lower()))
    return ids.pop() if len(ids) == 1 else None
