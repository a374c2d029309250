"""The dataset card (README.md) written beside a `runs export --format hf` dataset: YAML metadata (size,
columns, the config, the models and judges that made it, the sources' licences where known) and a short text.

The card format is huggingface_hub's (`DatasetCard` / `DatasetCardData`), so the folder can be pushed to the
Hub as it is and `datasets` shows the metadata.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from synthloop.runs.lineage import hf_licence, read_config, run_lineage
from synthloop.runs.run_dir import RunDir

_SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]


def size_category(rows: int) -> str:
    return next((label for bound, label in _SIZES if rows < bound), "n>100M")


def _features(dataset) -> list[dict[str, Any]]:
    # `Features._to_yaml_list` is what `datasets` itself writes into a card's `dataset_info` on push_to_hub;
    # any other spelling of nested features would not round-trip through the Hub's card parser
    try:
        return dataset.features._to_yaml_list()
    except AttributeError:  # a future datasets without it: plain column names and types
        return [{"name": name, "dtype": str(feature)} for name, feature in dataset.features.items()]


def dataset_card(run: RunDir, dataset) -> str:
    """The card's text for `dataset` (the run's records as a `datasets.Dataset`)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    lineage = run_lineage(run)
    manifest = run.manifest()
    rows = len(dataset)
    dropped = Counter(str(r.get("reason", "")).split("(")[0].split(":")[0].strip() for r in run.iter_filtered())
    licence = hf_licence([s["licence"] for s in lineage["sources"]]) if lineage["sources"] else None
    data = DatasetCardData(
        pretty_name=run.path.name,
        license=licence or "other",
        size_categories=[size_category(rows)],
        tags=["synthetic", "synthloop", *([lineage["program"]] if lineage["program"] else [])],
        dataset_info={"features": _features(dataset), "splits": [{"name": "train", "num_examples": rows}]},
        synthloop={
            "run": run.path.name,
            "kind": lineage["kind"],
            "program": lineage["program"],
            "status": manifest.get("status"),
            "created": manifest.get("created"),
            "identity_hash": lineage["identity_hash"],
            "records": rows,
            "dropped": sum(dropped.values()),
            "dropped_reasons": dict(dropped.most_common(10)),
            "models": lineage["models"],
            "judges": lineage["judges"],
            "sources": [{"path": s["path"], "license": s["licence"] or "unknown"} for s in lineage["sources"]],
            "config": read_config(run),
        },
    )
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{_body(run, lineage, rows, dropped, licence)}").content


def _body(run: RunDir, lineage: dict[str, Any], rows: int, dropped: Counter, licence: str | None) -> str:
    lines = [f"# {run.path.name}", "",
             f"Synthetic data made by the synthloop run `{run.path.name}` "
             f"({lineage['kind'] or 'run'}{', program ' + lineage['program'] if lineage['program'] else ''}): "
             f"{rows} records."]
    if dropped:
        reasons = ", ".join(f"{reason} ({n})" for reason, n in dropped.most_common(5))
        lines.append(f"{sum(dropped.values())} more were dropped by filters: {reasons}.")
    lines += ["", "## Made by", "",
              f"- models: {', '.join(f'`{m}`' for m in lineage['models']) or 'unknown'}",
              f"- judges: {', '.join(f'`{j}`' for j in lineage['judges']) or 'none'}", "",
              "## Sources and licences", ""]
    if lineage["sources"]:
        lines += ["| source | licence |", "|---|---|"]
        lines += [f"| `{s['path']}` | {s['licence'] or 'unknown'} |" for s in lineage["sources"]]
    else:
        lines.append("No source files: the program made its inputs itself.")
    lines += ["", f"Card licence: {licence or 'other (not every source licence is known, or they differ)'}. "
              "The terms of the models that wrote the text apply as well.", "",
              "## Load", "", "```python", "from datasets import load_from_disk", "",
              "ds = load_from_disk('path/to/this/folder')", "```", "",
              "The resolved config that made the run is in the metadata above (`synthloop.config`).", ""]
    return "\n".join(lines)
