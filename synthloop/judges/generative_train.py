"""Training a generative judge (JudgeLM-style SFT on teacher judgments) through TRL.

    pairs (hh-rlhf train part, preference datasets, ranked runs)
      -> a teacher's verdicts: any judge (`teacher: {kind: llm, engine: ...}`) or the pairs' own human
         labels (`teacher: labels`: the chosen answer gets label_scores[0], the rejected one label_scores[1],
         the explanation says honestly "Human annotators preferred Assistant N.")
      -> JudgeLM SFT records (`judge_sft_records`: swap augmentation, reference support/drop)
      -> `synthloop.train.sft` (TRL SFTTrainer)
      -> runs/<name>/model/: a checkpoint every engine loads, plus judge.json saying what it is;
         use it as `judge: {kind: generative, path: runs/<name>/model}`.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.base import PairItem, Preference
from synthloop.judges.generative import judge_sft_records
from synthloop.judges.generative_judge import ARTIFACT_FILE, cut_texts
from synthloop.judges.preference_data import PreferencePair, render_prompt, render_response
from synthloop.judges.spec import JudgeSpec
from synthloop.runs.jsonl import atomic_write
from synthloop.runs.run_dir import ResumePolicy, RunDir
from synthloop.train.config import SFTSettings


class GenerativeTrainSettings(Config):
    base_model: str = Field("smollm2-135m-instruct", description="The model fine-tuned into a judge: a registered "
                                                                 "name, a checkpoint directory or a hub id.")
    teacher: Literal["labels"] | JudgeSpec = Field(
        "labels", description="Who judges the training pairs: `labels` (the pairs' human preferences) or any judge "
        "spec, e.g. {kind: llm, engine: {kind: vllm, model: ...}} (a strong model as JudgeLM's teacher).")
    label_scores: tuple[float, float] = Field((8.0, 3.0), description="teacher=labels: the scores given to the "
                                                                      "chosen and the rejected answer.")
    swap: bool = Field(True, description="Swap augmentation: every pair is also trained with the answers exchanged.")
    reference_drop: float = Field(0.5, ge=0, le=1, description="Share of pairs with a reference trained without it.")
    max_input_chars: int = Field(1000, ge=50, description="Questions and answers are cut to this many characters "
                                                          "(the judge uses the same cut), so the verdict always fits "
                                                          "sft.max_length.")
    seed: int = Field(0, description="Which answer is shown first, and reference drop.")
    sft: SFTSettings = Field(SFTSettings(learning_rate=5e-5, epochs=1, max_length=1024),
                             description="The TRL SFT step (loss on the verdict only).")


def label_verdicts(flips: Sequence[bool], scores: tuple[float, float]) -> list[Preference]:
    """The human labels as a teacher: the chosen answer wins; `flips[i]` means it is shown as Assistant 2."""
    high, low = scores
    out = []
    for flipped in flips:
        n = 2 if flipped else 1
        out.append(Preference(winner="b" if flipped else "a", score_a=low if flipped else high,
                              score_b=high if flipped else low, rationale=f"Human annotators preferred Assistant {n}."))
    return out


def pair_items(pairs: Sequence[PreferencePair], seed: int, max_chars: int) -> tuple[list[PairItem], list[bool]]:
    """Preference pairs as judge inputs, the chosen answer shown second in about half of them (seeded)."""
    rng = random.Random(seed)
    items, flips = [], []
    for pair in pairs:
        flipped = rng.random() < 0.5
        chosen, rejected = render_response(pair.chosen), render_response(pair.rejected)
        a, b = (rejected, chosen) if flipped else (chosen, rejected)
        question, a, b, _ = cut_texts(render_prompt(pair.prompt), a, b, None, max_chars)
        items.append(PairItem(prompt=question, a=a, b=b))
        flips.append(flipped)
    return items, flips


def train_generative_judge(cfg, run_path: Path, *, resume: ResumePolicy = "if-unchanged",
                           config_yaml: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`synthloop judge train` with `kind: generative` (cfg is a JudgeTrainConfig); returns the metrics."""
    from synthloop.judges.panel import Panel
    from synthloop.train import sft

    settings: GenerativeTrainSettings = cfg.generative
    identity = {"kind": "judge_train_generative", "config": json.loads(cfg.model_dump_json())}
    run = RunDir.open(run_path, identity=identity, kind="judge_train", resume=resume, config_yaml=config_yaml)
    pairs = cfg.data.train_pairs(log=log)
    items, flips = pair_items(pairs, settings.seed, settings.max_input_chars)
    if settings.teacher == "labels":
        teacher: dict[str, Any] = {"judge": "labels", "scores": list(settings.label_scores)}
        verdicts = label_verdicts(flips, settings.label_scores)
    else:
        with Panel.from_specs([settings.teacher], cache_path=run.path / "teacher_cache.sqlite",
                              where="generative.teacher", log=log) as panel:
            judge = panel.judges[0]
            teacher = judge.describe()
            log(f"teacher {judge.name}: judging {len(items)} pairs")
            verdicts = judge.compare(items)
    records = judge_sft_records(items, verdicts, swap=settings.swap, reference_drop=settings.reference_drop,
                                seed=settings.seed)
    if not records:
        from synthloop.engines.types import EngineError

        first = next((v.rationale for v in verdicts if v.rationale), "")
        raise EngineError(f"the teacher gave no usable verdict on {len(verdicts)} pairs (e.g. {first[:160]!r}): "
                          "nothing to train on")
    agreement = sum(v.winner == ("b" if f else "a") for v, f in zip(verdicts, flips, strict=True)) / len(flips)
    log(f"{len(pairs)} pairs -> {len(records)} SFT records (teacher agrees with the human labels on "
        f"{agreement:.1%} of pairs)")
    data_file = run.path / "sft_data.jsonl"
    atomic_write(data_file, "".join(json.dumps({"messages": r["messages"]}) + "\n" for r in records))
    result = sft(model=settings.base_model, data=data_file, out=run.path / "sft", config=settings.sft, log=log)
    model_dir = run.path / "model"
    if not model_dir.exists():  # the artifact lives at runs/<name>/model like the reward model's (moved, not copied)
        shutil.move(result.checkpoint, model_dir)
    metrics = {
        "kind": "generative_judge", "train_pairs": len(pairs), "sft_records": len(records),
        "teacher": teacher, "teacher_agrees_with_labels": agreement,
        "failed_teacher_verdicts": sum(v.score_a is None or v.score_b is None for v in verdicts),
        "steps": result.steps, "train_seconds": result.seconds, "loss_first": result.first_loss,
        "loss_last": result.last_loss, "peak_rss_gib": result.peak_rss_gib,
    }
    artifact = {"kind": "generative_judge", "format": "judgelm", "base_model": settings.base_model,
                "teacher": teacher, "train_pairs": len(pairs), "sft_records": len(records), "swap": settings.swap,
                "reference_drop": settings.reference_drop, "max_input_chars": settings.max_input_chars,
                "sft": settings.sft.model_dump(mode="json"),
                "use": f"judge: {{kind: generative, path: {model_dir}}}"}
    atomic_write(model_dir / ARTIFACT_FILE, json.dumps(artifact, indent=2, default=str))
    atomic_write(run.path / "metrics.json", json.dumps(metrics, indent=2, default=str))
    run.update_manifest(status="completed", counts={"train_pairs": len(pairs), "sft_records": len(records)})
    return metrics
