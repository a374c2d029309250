"""What `synthloop judge train|eval|score` do, as library functions over their configs."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import RUNTIME, Config
from synthloop.judges.augment import AugmentConfig, answer_pairs, augment
from synthloop.judges.base import PairItem
from synthloop.judges.generative_train import GenerativeTrainSettings
from synthloop.judges.panel import Panel
from synthloop.judges.preference_data import (
    PreferencePair,
    decontaminate,
    is_loop_dir,
    judged_samples,
    load_hh_rlhf,
    pairs_from_ranked,
    read_pairs,
    render_response,
    split_by_prompt,
)
from synthloop.judges.reward_model import RewardModelConfig, TrainConfig
from synthloop.judges.spec import JudgeSpec
from synthloop.runs.inputs import DatasetInput
from synthloop.runs.jsonl import atomic_write
from synthloop.runs.run_dir import ResumePolicy, RunDir

HH_RLHF = Path("../shared/data/hh_rlhf/harmless-base_test.jsonl.gz")


class RankedSource(Config):
    """Preference pairs from synthloop records: best vs worst response per prompt, ranked by a stored score
    or by a judge / verifier."""

    path: Path = Field(description="A run directory or dataset of records (several responses per prompt), or a "
                                   "loop directory: its `round-*/judged/part-*.jsonl` samples (verifier verdicts "
                                   "in each sample's `scores`).")
    score_field: str | None = Field(None, description="Rank by this stored score: a column, or 'scores.<judge>' "
                                                      "(what the judge_threshold filter and the loops write, e.g. "
                                                      "scores.verifier:math_answer).")
    judge: JudgeSpec | None = Field(None, description="Or rank by scoring the records with this judge/verifier.")
    min_margin: float = Field(0.0, ge=0, description="Skip prompts whose best and worst differ by no more than this.")
    limit: int | None = Field(None, ge=1, description="Most pairs taken from this source.")


class PreferenceSource(DatasetInput):
    """A preference dataset (prompt/chosen/rejected, or hh-rlhf style dialogues)."""

    name: str | None = Field(None, description="Its name in reports and `judge eval` tables (default: the file "
                                               "name without suffixes).")
    held_out_fraction: float = Field(0.0, ge=0, lt=1, description="Share of its prompts held out for evaluation "
                                                                  "(split by a hash of the prompt); 0: all train.")
    train_limit: int | None = Field(None, ge=1, description="Most training pairs taken from it (after the split; a "
                                                            "seeded sample), to set a mixture's proportions.")

    def set_name(self) -> str:
        return self.name or Path(self.path).name.split(".")[0]


class PreferenceData(Config):
    hh_rlhf: Path | None = Field(HH_RLHF, description="hh-rlhf preference file (.jsonl[.gz] of chosen/rejected); "
                                                      "split deterministically by a hash of each prompt.")
    held_out_fraction: float = Field(0.2, gt=0, lt=1, description="Share of hh-rlhf prompts held out for evaluation.")
    hh_rlhf_limit: int | None = Field(None, ge=1, description="Most hh-rlhf training pairs (a seeded sample).")
    datasets: list[PreferenceSource] = Field(default_factory=list, description="More preference datasets (TRL "
                                                                               "format: prompt/chosen/rejected); each "
                                                                               "may hold out a share of its prompts.")
    ranked: list[RankedSource] = Field(default_factory=list, description="Pairs from synthloop runs, ranked by a "
                                                                         "judge or a verifier, all for training.")
    augment: AugmentConfig = Field(AugmentConfig(), description="Bias-offset pairs made from good answers "
                                                                "(judges/augment.py).")
    decontaminate: list[DatasetInput] = Field(
        default_factory=list, description="More evaluation sets (rows with a prompt) whose prompts no training pair "
        "may share; the held-out parts above are always excluded.")
    limit: int | None = Field(None, ge=1, description="Most training pairs (a seeded sample; a quick run).")
    eval_limit: int | None = Field(None, ge=1, description="Most pairs evaluated per held-out set (a seeded sample).")
    seed: int = Field(0, description="Which pairs the limits keep.")

    def _hh(self, split: str) -> list[PreferencePair]:
        return load_hh_rlhf(self.hh_rlhf, split=split, held_out_fraction=self.held_out_fraction) if self.hh_rlhf else []

    def eval_sets(self) -> dict[str, list[PreferencePair]]:
        """Held-out pairs by set name: `hh_rlhf_held_out` and `<dataset>_held_out` for each dataset that holds out."""
        sets: dict[str, list[PreferencePair]] = {}
        if self.hh_rlhf is not None:
            sets["hh_rlhf_held_out"] = self._hh("held_out")
        for spec in self.datasets:
            if spec.held_out_fraction > 0:
                _, held = split_by_prompt(read_pairs(spec), spec.held_out_fraction)
                sets[f"{spec.set_name()}_held_out"] = held
        return {name: sample(pairs, self.eval_limit, self.seed) for name, pairs in sets.items()}

    def eval_pairs(self) -> list[PreferencePair]:
        """Every held-out pair (all sets together)."""
        return [p for pairs in self.eval_sets().values() for p in pairs]

    def train_pairs(self, log: Callable[[str], None] | None = None) -> list[PreferencePair]:
        """The training mixture: hh-rlhf's train part, each dataset's train part, ranked pairs, augmentation;
        then every pair whose prompt appears in an evaluation set is dropped."""
        parts: dict[str, list[PreferencePair]] = {}
        if self.hh_rlhf is not None:
            parts["hh_rlhf"] = sample(self._hh("train"), self.hh_rlhf_limit, self.seed)
        for spec in self.datasets:
            train, _ = split_by_prompt(read_pairs(spec, source=spec.set_name()), spec.held_out_fraction)
            parts[spec.set_name()] = sample(train, spec.train_limit, self.seed)
        for source in self.ranked:
            parts[f"ranked:{Path(source.path).name}"] = sample(ranked_pairs(source, log=log), source.limit, self.seed)
        base = [p for pairs in parts.values() for p in pairs]
        if self.augment.count:
            extra = [pair for source in self.augment.answers for pair in answer_pairs(source)]
            parts["augment"] = augment(base, self.augment, extra)
        against = self.eval_pairs()
        for spec in self.decontaminate:
            against += [PreferencePair(prompt=row.get("prompt", row.get("instruction", row.get("question", ""))),
                                       chosen="", rejected="") for row in spec.rows()]
        pairs: list[PreferencePair] = []
        for name, part in parts.items():
            kept, dropped = decontaminate(part, against)
            if log:
                log(f"data: {name}: {len(kept)} training pairs" + (f" ({dropped} dropped: prompt in an evaluation "
                                                                   "set)" if dropped else ""))
            pairs += kept
        if not pairs:
            raise ValueError("data: no training pairs (set data.hh_rlhf, data.datasets or data.ranked)")
        return sample(pairs, self.limit, self.seed)


def sample(pairs: list[PreferencePair], limit: int | None, seed: int) -> list[PreferencePair]:
    """At most `limit` pairs, a seeded sample in their original order (all of them when limit is None)."""
    if limit is None or len(pairs) <= limit:
        return pairs
    keep = sorted(random.Random(seed).sample(range(len(pairs)), limit))
    return [pairs[i] for i in keep]


def ranked_pairs(source: RankedSource, log: Callable[[str], None] | None = None) -> list[PreferencePair]:
    records = list(judged_samples(source.path)) if is_loop_dir(source.path) else \
        list(DatasetInput(path=source.path).rows())
    if source.judge is not None:
        with Panel.from_specs([source.judge], where="data.ranked.judge", log=log) as panel:
            verdicts = panel.score_records(records)
        values = {id(r): v.score for r, v in zip(records, verdicts, strict=True)}
        return pairs_from_ranked(records, lambda r: values[id(r)], min_margin=source.min_margin,
                                 source=f"{source.path}:{panel.names[0]}")
    if source.score_field is None:
        raise ValueError(f"data.ranked {source.path}: set score_field or judge")

    def stored(record: dict[str, Any]) -> float | None:
        value: Any = record
        for part in source.score_field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return None if value is None else float(value)

    return pairs_from_ranked(records, stored, min_margin=source.min_margin,
                             source=f"{source.path}:{source.score_field}")


class JudgeTrainConfig(Config):
    name: str | None = Field(None, description="Run name (default: the config file's name).", json_schema_extra=RUNTIME)
    output_dir: Path = Field(Path("runs"), description="Where run directories go.", json_schema_extra=RUNTIME)
    kind: Literal["reward_model", "generative"] = Field(
        "reward_model", description="reward_model: MiniLM + scalar head (model/train sections); generative: a "
        "JudgeLM-style judge fine-tuned with TRL SFT on a teacher's verdicts (generative section).")
    data: PreferenceData = PreferenceData()
    model: RewardModelConfig = RewardModelConfig()
    train: TrainConfig = TrainConfig()
    generative: GenerativeTrainSettings = Field(GenerativeTrainSettings(),
                                                description="kind=generative: base model, teacher, augmentation, SFT.")


def baselines(pairs: list[PreferencePair]) -> dict[str, float]:
    """Accuracy of judging by length (longer wins; shorter wins) and of chance, on the same pairs. Longer-wins
    is also the share of pairs where the labels preferred the longer response (ties count half)."""
    def acc(pick: Callable[[int, int], float]) -> float:
        return sum(pick(len(render_response(p.chosen)), len(render_response(p.rejected))) for p in pairs) / len(pairs)

    return {
        "length_longer_wins": acc(lambda c, r: 1.0 if c > r else 0.5 if c == r else 0.0),
        "length_shorter_wins": acc(lambda c, r: 1.0 if c < r else 0.5 if c == r else 0.0),
        "chance": 0.5,
    }


def train_reward_model(cfg: JudgeTrainConfig, run_path: Path, *, resume: ResumePolicy = "if-unchanged",
                       config_yaml: str | None = None, log: Callable[[str], None] = print,
                       progress: Callable[[int, int, float], None] | None = None,
                       evaluate: bool = True) -> dict[str, Any]:
    """Train on `cfg.data.train_pairs()`, then (unless `evaluate` is False) measure every held-out set."""
    from synthloop.judges.reward_model import create_reward_model

    identity = {"kind": "judge_train", "config": json.loads(cfg.model_dump_json())}
    run = RunDir.open(run_path, identity=identity, kind="judge_train", resume=resume, config_yaml=config_yaml)
    train = cfg.data.train_pairs(log=log)
    sets = cfg.data.eval_sets() if evaluate else {}
    held_out = [p for pairs in sets.values() for p in pairs]
    log(f"{len(train)} training pairs, {len(held_out)} held-out pairs ({', '.join(sets) or 'none'})")
    rm = create_reward_model(cfg.model, seed=cfg.train.seed)
    metrics = rm.fit(train, cfg.train, progress=progress)
    metrics["train_sources"] = dict(sorted(Counter(p.source.split(":")[0] for p in train).items()))
    if held_out:
        metrics["sets"] = {}
        for name, pairs in sets.items():
            figures = evaluate_pairs(rm, "reward_model", pairs)
            metrics["sets"][name] = {k: figures[k] for k in ("pairs", "accuracy", "length_longer_wins",
                                                             "length_shorter_wins", "picks_longer", "length_bias")}
            log(f"{name}: accuracy {figures['accuracy']:.3f} on {len(pairs)} pairs (longer wins "
                f"{figures['length_longer_wins']:.3f}, shorter wins {figures['length_shorter_wins']:.3f}; judge "
                f"picks the longer {figures['picks_longer']:.3f})")
        metrics["held_out_accuracy"] = sum(m["accuracy"] * m["pairs"] for m in metrics["sets"].values()) / len(held_out)
        metrics["baselines"] = baselines(held_out)
    rm.metrics = metrics
    rm.save(run.path / "model")
    atomic_write(run.path / "metrics.json", json.dumps(metrics, indent=2))
    run.update_manifest(status="completed", counts={"train_pairs": len(train), "held_out_pairs": len(held_out)},
                        held_out_accuracy=metrics.get("held_out_accuracy"))
    return metrics


class JudgeEvalConfig(Config):
    name: str | None = Field(None, description="Run name (default: the config file's name).", json_schema_extra=RUNTIME)
    output_dir: Path = Field(Path("runs"), description="Where run directories go.", json_schema_extra=RUNTIME)
    judge: JudgeSpec = Field(description="The judge to evaluate.")
    data: PreferenceData = Field(PreferenceData(held_out_fraction=0.2),
                                 description="Its held-out parts are evaluation sets (the same split `judge "
                                             "train` used: hh-rlhf's, and each dataset's with held_out_fraction).")
    sets: dict[str, DatasetInput] = Field(default_factory=dict, description="More evaluation sets by name: "
                                                                            "prompt/chosen/rejected files.")
    pairs: DatasetInput | None = Field(None, description="Evaluate on this preference dataset alone (instead of "
                                                         "the held-out parts and `sets`).")
    seed: int = Field(0, description="Shuffles which response is shown as A (so position bias cannot help).")

    def eval_sets(self) -> dict[str, list[PreferencePair]]:
        if self.pairs is not None:
            return {Path(self.pairs.path).name.split(".")[0]: read_pairs(self.pairs)}
        sets = self.data.eval_sets()
        sets.update({name: sample(read_pairs(spec), self.data.eval_limit, self.data.seed)
                     for name, spec in self.sets.items()})
        return {name: pairs for name, pairs in sets.items() if pairs}


def evaluate_judge(cfg: JudgeEvalConfig, run_path: Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pairwise accuracy against preference labels on every set (ties count half), with the length baselines,
    chance, and the judge's length bias (`picks_longer`: share of pairs where it picked the longer response;
    the labels' share is `length_longer_wins`); for an LLM judge with swap, also the swap-consistency rate and
    the accuracy of the first order alone. With one set, its figures are also at the top level."""
    sets = cfg.eval_sets()
    if not sets:
        raise ValueError("no evaluation pairs (set data.hh_rlhf, data.datasets with held_out_fraction, sets or pairs)")
    started = time.time()
    out: dict[str, Any] = {"sets": {}}
    with Panel.from_specs([cfg.judge], where="judge", log=log) as panel:
        judge = panel.judges[0]
        out["judge"] = judge.describe()
        for name, pairs in sets.items():
            out["sets"][name] = evaluate_pairs(judge, cfg.judge.kind, pairs, cfg.seed)
            log(f"{name}: {len(pairs)} pairs, accuracy {out['sets'][name]['accuracy']:.3f}")
    out["seconds"] = round(time.time() - started, 1)
    if len(sets) == 1:
        out.update(next(iter(out["sets"].values())))
    run_path.mkdir(parents=True, exist_ok=True)
    atomic_write(run_path / "eval.json", json.dumps(out, indent=2, default=str))
    return out


def evaluate_pairs(judge, kind: str, pairs: list[PreferencePair], seed: int = 0) -> dict[str, Any]:
    """One set's figures: accuracy (ties half), strict accuracy, ties, picks_longer, length baselines, chance."""
    rng = random.Random(seed)
    flips = [rng.random() < 0.5 for _ in pairs]  # chosen shown as b in about half the pairs
    items = [PairItem(prompt=_text(p.prompt), a=render_response(p.rejected if f else p.chosen),
                      b=render_response(p.chosen if f else p.rejected)) for p, f in zip(pairs, flips, strict=True)]
    out: dict[str, Any] = {"pairs": len(pairs)}
    if kind in ("llm", "generative"):
        from synthloop.judges.llm_judge import combine

        orders = judge.compare_orders(items)
        out["accuracy_first_order"] = _accuracy([o[0] for o in orders], flips)
        out["accuracy_first_order_strict"] = _accuracy([o[0] for o in orders], flips, tie=0.0)
        out["ties_first_order"] = sum(o[0].winner == "tie" for o in orders) / len(orders)
        out["failed_verdicts"] = sum(v.rationale.startswith("judge failed") for o in orders for v in o)
        if len(orders[0]) > 1:
            out["accuracy_swap"] = _accuracy([combine(o) for o in orders], flips)
            out["swap_consistency"] = sum(len({v.winner for v in o}) == 1 for o in orders) / len(orders)
        prefs = [combine(o) for o in orders]
    else:
        prefs = judge.compare(items)
    base = baselines(pairs)
    out["accuracy"] = _accuracy(prefs, flips)
    out["accuracy_strict"] = _accuracy(prefs, flips, tie=0.0)
    out["ties"] = sum(p.winner == "tie" for p in prefs) / len(prefs)
    out["length_longer_wins"] = base["length_longer_wins"]
    out["length_shorter_wins"] = base["length_shorter_wins"]
    out["chance"] = 0.5
    out["picks_longer"] = picks_longer(prefs, items)
    out["length_bias"] = out["picks_longer"] - base["length_longer_wins"]
    out["baselines"] = base
    return out


def picks_longer(prefs, items: list[PairItem]) -> float:
    """Share of pairs where the judge picked the longer response (a tie, or equal lengths, count half)."""
    total = 0.0
    for pref, item in zip(prefs, items, strict=True):
        if len(item.a) == len(item.b) or pref.winner == "tie":
            total += 0.5
        else:
            total += 1.0 if (pref.winner == "a") == (len(item.a) > len(item.b)) else 0.0
    return total / len(items)


def _text(value: Any) -> str:
    from synthloop.judges.preference_data import render_prompt

    return value if isinstance(value, str) else render_prompt(value)


def _accuracy(prefs, flips: list[bool], tie: float = 0.5) -> float:
    """Share of pairs where the judge picked the human-preferred response; a tie counts `tie`."""
    total = 0.0
    for pref, flipped in zip(prefs, flips, strict=True):
        right = "b" if flipped else "a"
        total += 1.0 if pref.winner == right else tie if pref.winner == "tie" else 0.0
    return total / len(flips)


class JudgeScoreConfig(Config):
    name: str | None = Field(None, description="Output run name (default: the config file's name).",
                             json_schema_extra=RUNTIME)
    output_dir: Path = Field(Path("runs"), description="Where run directories go.", json_schema_extra=RUNTIME)
    input: DatasetInput = Field(description="The records to score: a run directory or any dataset file.")
    judge: JudgeSpec = Field(description="The judge that scores them.")
