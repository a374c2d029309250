"""What `synthloop judge train|eval|score` do, as library functions over their configs."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import RUNTIME, Config
from synthloop.judges.base import PairItem
from synthloop.judges.generative_train import GenerativeTrainSettings
from synthloop.judges.panel import Panel
from synthloop.judges.preference_data import (
    PreferencePair,
    load_hh_rlhf,
    pairs_from_ranked,
    pairs_from_rows,
    render_response,
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

    path: Path = Field(description="A run directory or dataset of records (several responses per prompt).")
    score_field: str | None = Field(None, description="Rank by this stored score: a column, or 'scores.<judge>' "
                                                      "(what the judge_threshold filter writes).")
    judge: JudgeSpec | None = Field(None, description="Or rank by scoring the records with this judge/verifier.")
    min_margin: float = Field(0.0, ge=0, description="Skip prompts whose best and worst differ by no more than this.")


class PreferenceData(Config):
    hh_rlhf: Path | None = Field(HH_RLHF, description="hh-rlhf preference file (.jsonl[.gz] of chosen/rejected); "
                                                      "split deterministically by a hash of each prompt.")
    held_out_fraction: float = Field(0.2, gt=0, lt=1, description="Share of hh-rlhf prompts held out for evaluation.")
    datasets: list[DatasetInput] = Field(default_factory=list, description="More preference datasets (TRL format: "
                                                                           "prompt/chosen/rejected), all for training.")
    ranked: list[RankedSource] = Field(default_factory=list, description="Pairs from synthloop runs, ranked by a "
                                                                         "judge or a verifier, all for training.")
    limit: int | None = Field(None, ge=1, description="Most training pairs (a quick run).")
    eval_limit: int | None = Field(None, ge=1, description="Most held-out pairs evaluated.")

    def train_pairs(self, log: Callable[[str], None] | None = None) -> list[PreferencePair]:
        pairs: list[PreferencePair] = []
        if self.hh_rlhf is not None:
            pairs += load_hh_rlhf(self.hh_rlhf, split="train", held_out_fraction=self.held_out_fraction)
        for spec in self.datasets:
            pairs += list(pairs_from_rows(spec.rows(), source=str(spec.path)))
        for source in self.ranked:
            pairs += ranked_pairs(source, log=log)
        if not pairs:
            raise ValueError("data: no training pairs (set data.hh_rlhf, data.datasets or data.ranked)")
        return pairs[: self.limit] if self.limit else pairs

    def eval_pairs(self) -> list[PreferencePair]:
        if self.hh_rlhf is None:
            return []
        pairs = load_hh_rlhf(self.hh_rlhf, split="held_out", held_out_fraction=self.held_out_fraction)
        return pairs[: self.eval_limit] if self.eval_limit else pairs


def ranked_pairs(source: RankedSource, log: Callable[[str], None] | None = None) -> list[PreferencePair]:
    records = list(DatasetInput(path=source.path).rows())
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
    """Accuracy of judging by length (longer wins; shorter wins) and of chance, on the same pairs."""
    def acc(pick: Callable[[int, int], float]) -> float:
        return sum(pick(len(render_response(p.chosen)), len(render_response(p.rejected))) for p in pairs) / len(pairs)

    return {
        "length_longer_wins": acc(lambda c, r: 1.0 if c > r else 0.5 if c == r else 0.0),
        "length_shorter_wins": acc(lambda c, r: 1.0 if c < r else 0.5 if c == r else 0.0),
        "chance": 0.5,
    }


def train_reward_model(cfg: JudgeTrainConfig, run_path: Path, *, resume: ResumePolicy = "if-unchanged",
                       config_yaml: str | None = None, log: Callable[[str], None] = print,
                       progress: Callable[[int, int, float], None] | None = None) -> dict[str, Any]:
    from synthloop.judges.reward_model import RewardModel

    identity = {"kind": "judge_train", "config": json.loads(cfg.model_dump_json())}
    run = RunDir.open(run_path, identity=identity, kind="judge_train", resume=resume, config_yaml=config_yaml)
    train = cfg.data.train_pairs(log=log)
    held_out = cfg.data.eval_pairs()
    log(f"{len(train)} training pairs, {len(held_out)} held-out pairs")
    rm = RewardModel.create(cfg.model, seed=cfg.train.seed)
    metrics = rm.fit(train, cfg.train, eval_pairs=held_out, log=log, progress=progress)
    if held_out:
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
    data: PreferenceData = PreferenceData(held_out_fraction=0.2)
    pairs: DatasetInput | None = Field(None, description="Evaluate on this preference dataset instead of the "
                                                         "hh-rlhf held-out part.")
    seed: int = Field(0, description="Shuffles which response is shown as A (so position bias cannot help).")


def evaluate_judge(cfg: JudgeEvalConfig, run_path: Path, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pairwise accuracy against human preferences (ties count half), plus length and chance baselines;
    for an LLM judge with swap, also the swap-consistency rate and the accuracy of the first order alone."""
    pairs = list(pairs_from_rows(cfg.pairs.rows(), str(cfg.pairs.path))) if cfg.pairs else cfg.data.eval_pairs()
    if not pairs:
        raise ValueError("no evaluation pairs (set data.hh_rlhf or pairs)")
    rng = random.Random(cfg.seed)
    flips = [rng.random() < 0.5 for _ in pairs]  # chosen shown as b in about half the pairs
    items = [PairItem(prompt=_text(p.prompt), a=render_response(p.rejected if f else p.chosen),
                      b=render_response(p.chosen if f else p.rejected)) for p, f in zip(pairs, flips, strict=True)]
    started = time.time()
    out: dict[str, Any] = {"pairs": len(pairs)}
    with Panel.from_specs([cfg.judge], where="judge", log=log) as panel:
        judge = panel.judges[0]
        out["judge"] = judge.describe()
        if cfg.judge.kind in ("llm", "generative"):
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
    out["accuracy"] = _accuracy(prefs, flips)
    out["accuracy_strict"] = _accuracy(prefs, flips, tie=0.0)
    out["ties"] = sum(p.winner == "tie" for p in prefs) / len(prefs)
    out["seconds"] = round(time.time() - started, 1)
    out["baselines"] = baselines(pairs)
    run_path.mkdir(parents=True, exist_ok=True)
    atomic_write(run_path / "eval.json", json.dumps(out, indent=2, default=str))
    return out


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
