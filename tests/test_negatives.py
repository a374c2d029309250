"""Learning from negatives: the REDI and TOPR trainers (TRL SFTTrainer subclasses) compute the papers' objectives, train
the tiny model in the right direction, and run as methods of the `negatives` recipe through every loop stage."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from helpers import ROOT, run_cli, write_config

from synthloop.configs import ConfigError, load_config
from synthloop.loops.config import LoopConfig
from synthloop.loops.recipes.negatives.recipe import NegativesConfig, rejected_examples, topr_samples
from synthloop.runs.jsonl import read_jsonl
from synthloop.train import REDISettings, TOPRSettings, redi, topr


def _msg(role: str, text: str) -> list[dict]:
    return [{"role": role, "content": text}]


def _pairs(n: int = 6) -> list[dict]:
    return [{"prompt": _msg("user", f"What is {i} plus {i}?"), "chosen": _msg("assistant", f"It is {2 * i}."),
             "rejected": _msg("assistant", f"Maybe {2 * i + 3}, or not.")} for i in range(n)]


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32), tokenizer


def _args(tmp_path, **extra):
    from trl import SFTConfig

    return SFTConfig(output_dir=str(tmp_path / "trainer"), use_cpu=True, bf16=False, report_to="none",
                     per_device_train_batch_size=4, dataloader_pin_memory=False, completion_only_loss=True,
                     dataset_num_proc=None, **extra)


@torch.no_grad()
def _completion_logp(model, tokenizer, prompt, completion, temperature: float = 1.0) -> tuple[float, int]:
    """log p(completion | prompt) and its token count, computed from scratch: the chat template's tokens after the
    prompt's (with the generation prompt), scored by a plain forward pass."""
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(prompt + completion, return_dict=True)["input_ids"]
    assert full[: len(ids)] == ids
    logits = model(input_ids=torch.tensor([full])).logits[0, :-1].float() / temperature
    logps = logits.log_softmax(-1).gather(-1, torch.tensor(full[1:])[:, None])[:, 0]
    return logps[len(ids) - 1:].sum().item(), len(full) - len(ids)


def _ordered_batch(trainer) -> dict:
    """Every training row in dataset order, collated the way the trainer collates its batches."""
    dataset = trainer._remove_unused_columns(trainer.train_dataset)
    return trainer.data_collator([dataset[i] for i in range(len(dataset))])


def test_redi_loss_is_the_papers_objective(tmp_path, tiny_model_path):
    import datasets

    from synthloop.train.redi import pair_sequences
    from synthloop.train.sequence_trainers import REDITrainer

    model, tokenizer = _load(tiny_model_path)
    rows = list(pair_sequences(_pairs(3)))
    trainer = REDITrainer(model=model, args=_args(tmp_path), train_dataset=datasets.Dataset.from_list(rows),
                          processing_class=tokenizer, alpha=0.8)
    batch = _ordered_batch(trainer)
    assert batch["sign"].tolist() == [1.0, -1.0] * 3
    loss = trainer.compute_loss(model, dict(batch)).item()
    # L = mean over pairs of -log p(y_w|x)/|y_w| + 0.8 log p(y_l|x)/|y_l|
    terms = []
    for row in rows:
        logp, length = _completion_logp(model, tokenizer, row["prompt"], row["completion"])
        terms.append((-1.0 if row["sign"] > 0 else 0.8) * logp / length)
    assert loss == pytest.approx(sum(terms) / 3, rel=1e-4)


def test_topr_loss_tapers_negatives_only(tmp_path, tiny_model_path):
    import datasets

    from synthloop.train.sequence_trainers import TOPRTrainer

    model, tokenizer = _load(tiny_model_path)
    prompt = _msg("user", "What is 3 plus 3?")
    samples = [("It is 6.", 1.0), ("It is 7.", -1.0), ("It is 9, I think.", -1.0), ("Six.", 1.0)]
    rows = [{"prompt": prompt, "completion": _msg("assistant", text), "reward": reward} for text, reward in samples]
    # the behaviour log-probabilities come from the starting policy at the sampling temperature
    trainer = TOPRTrainer(model=model, args=_args(tmp_path), train_dataset=datasets.Dataset.from_list(rows),
                          processing_class=tokenizer, behavior_temperature=0.7)
    expected_mu = [_completion_logp(model, tokenizer, prompt, r["completion"], temperature=0.7)[0] for r in rows]
    assert trainer.train_dataset["behavior_logp"] == pytest.approx(expected_mu, rel=1e-4)
    # the loss: -R log pi(y|x) on positives, -[pi/mu]_0^1 R log pi(y|x) on negatives (given mu: a very likely
    # negative under mu gets a tiny weight, a very unlikely one the full weight 1)
    given = [-5.0, 0.0, -1e4, 0.0]
    trainer = TOPRTrainer(model=model, args=_args(tmp_path),
                          train_dataset=datasets.Dataset.from_list([dict(r, behavior_logp=b) for r, b in
                                                                    zip(rows, given, strict=True)]),
                          processing_class=tokenizer)
    loss = trainer.compute_loss(model, dict(_ordered_batch(trainer))).item()
    expected = []
    for row, mu in zip(rows, given, strict=True):
        logp, _ = _completion_logp(model, tokenizer, prompt, row["completion"])
        weight = 1.0 if row["reward"] >= 0 else math.exp(min(0.0, logp - mu))  # [pi/mu]_0^1
        expected.append(-weight * row["reward"] * logp)
    assert expected[1] == pytest.approx(0.0, abs=1e-6)  # mu(y)=1 >> pi(y): the taper switches the negative off
    assert loss == pytest.approx(sum(expected) / len(expected), rel=1e-4)


def _gap(path, pairs) -> float:
    """Mean per-token log-likelihood of the chosen answers minus that of the rejected ones."""
    model, tokenizer = _load(path)
    gaps = []
    for pair in pairs:
        good, n_good = _completion_logp(model, tokenizer, pair["prompt"], pair["chosen"])
        bad, n_bad = _completion_logp(model, tokenizer, pair["prompt"], pair["rejected"])
        gaps.append(good / n_good - bad / n_bad)
    return sum(gaps) / len(gaps)


def test_redi_and_topr_train_towards_correct_and_away_from_incorrect(tmp_path, tiny_model_path):
    pairs = _pairs(6)
    before = _gap(tiny_model_path, pairs)
    result = redi(model=tiny_model_path, data=pairs, out=tmp_path / "redi", progress=False,
                  config=REDISettings(epochs=4, batch_size=4, learning_rate=3e-3))
    assert result.method == "redi" and result.examples == 6 and result.steps == 12
    log = [r for r in read_jsonl(tmp_path / "redi" / "log.jsonl") if "loss" in r]
    assert log[-1]["logps/negative"] < log[0]["logps/negative"] and log[-1]["logps/positive"] > log[0]["logps/positive"]
    assert _gap(tmp_path / "redi" / "model", pairs) > before + 1.0

    rows = [{"prompt": p["prompt"], "completion": p[key], "reward": reward}
            for p in pairs for key, reward in (("chosen", 1.0), ("rejected", -1.0))]
    result = topr(model=tiny_model_path, data=rows, out=tmp_path / "topr", progress=False,
                  config=TOPRSettings(epochs=4, batch_size=4, learning_rate=3e-3, length_normalize=True))
    assert result.method == "topr" and result.examples == 12 and result.steps == 12
    assert _gap(tmp_path / "topr" / "model", pairs) > before + 1.0
    # a finished step is not trained again; bad data is a clear error
    assert topr(model=tiny_model_path, data=rows, out=tmp_path / "topr", progress=False) == result
    with pytest.raises(ValueError, match="reward"):
        topr(model=tiny_model_path, data=[{"prompt": "a", "completion": "b"}], out=tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="rejected"):
        redi(model=tiny_model_path, data=[{"prompt": "a", "chosen": "b"}], out=tmp_path / "y", progress=False)


def _judged(texts_accepted: list[tuple[str, bool]], task_id: int = 0) -> dict:
    return {"id": task_id, "messages": _msg("user", f"task {task_id}"),
            "samples": [{"text": t, "accepted": a, "score": float(a), "finish_reason": "stop"}
                        for t, a in texts_accepted]}


def test_negative_data_keeps_distinct_rejected_answers(tmp_path):
    record = _judged([("It is 4.", True), ("it is  4.", True), ("5", False), ("5 ", False), ("6", False),
                      ("7", False), ("", False)])
    rows = list(rejected_examples([record], max_per_task=2))
    assert [r["completion"][0]["content"] for r in rows] == ["5", "6"]
    judged = tmp_path / "judged"
    judged.mkdir()
    (judged / "part-00000.jsonl").write_text(json.dumps(record) + "\n")
    options = NegativesConfig(max_per_task=4, max_negatives_per_task=None, reward_incorrect=-0.5)
    samples = list(topr_samples(judged, options))
    assert [(r["completion"][0]["content"], r["reward"]) for r in samples] == [
        ("It is 4.", 1.0), ("5", -0.5), ("6", -0.5), ("7", -0.5)]


def test_negative_methods_are_checked_in_the_config():
    base = {"tasks": {"train": {"kind": "arithmetic"}, "eval": {"kind": "arithmetic", "seed": 9}}}
    with pytest.raises(ConfigError, match="recipe.kind=negatives"):
        load_config(LoopConfig, data=base, overrides=["train.plan=[sft+redi]"])
    with pytest.raises(ConfigError, match="sampling.n must be at least 2"):
        load_config(LoopConfig, data=base, overrides=["recipe.kind=negatives", "train.plan=[redi]", "sampling.n=1"])
    with pytest.raises(ConfigError, match="top_p must be 1"):
        load_config(LoopConfig, data=base,
                    overrides=["recipe.kind=negatives", "train.plan=[topr]", "sampling.top_p=0.9"])
    with pytest.raises(ConfigError, match="alpha"):
        load_config(LoopConfig, data=base, overrides=["recipe.kind=negatives", "recipe.redi.alpha=1.5"])
    cfg = load_config(LoopConfig, ROOT / "configs" / "loop" / "negatives.yaml", ["train.plan=[topr]"])
    assert cfg.recipe.kind == "negatives" and cfg.recipe.redi.alpha == 0.8 and cfg.train.method(3) == "topr"


def test_negatives_loop_runs_every_stage(tmp_path, monkeypatch):
    """sft+redi in round 1, sft+topr in round 2 (TOPR from the SFT checkpoint, the round's sampler as behaviour
    policy), on the tiny model through the CLI, with a judge that accepts about half of the samples."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))
    config = {
        "output_dir": str(tmp_path / "runs"),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "tasks": {"train": {"kind": "arithmetic", "seed": 1}, "eval": {"kind": "arithmetic", "seed": 2},
                  "eval_count": 8, "per_round": 8},
        "sampling": {"n": 4, "max_tokens": 12, "temperature": 1.0},
        "eval": {"max_tokens": 12},
        "judges": [{"kind": "python", "factory": "loop_judges:make", "min_score": 0.65}],
        "recipe": {"kind": "negatives", "include_truncated": True, "max_per_task": 2, "max_negatives_per_task": 2,
                   "redi": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-3},
                   "topr": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-3}},
        "train": {"plan": ["sft+redi", "sft+topr"], "sft": {"max_steps": 2, "batch_size": 4}},
        "rounds": 2, "concurrency": 8,
    }
    result = run_cli("loop", str(write_config(tmp_path / "neg.yaml", config)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "redi loss" in result.stdout and "topr neg" in result.stdout
    run = tmp_path / "runs" / "neg"
    state = json.loads((run / "state.json").read_text())
    r1, r2 = state["rounds"][1], state["rounds"][2]
    assert list(r1["stages"]) == ["tasks", "sample", "judge", "build", "train-sft", "train-redi", "evaluate"]
    assert list(r2["stages"]) == ["tasks", "sample", "judge", "build", "train-sft", "train-topr", "evaluate"]
    # REDI trains after SFT on the round's pairs; TOPR after SFT, with the round's sampler as behaviour policy
    assert r1["stages"]["train-redi"]["outputs"]["base_model"] == r1["stages"]["train-sft"]["outputs"]["checkpoint"]
    topr_out = r2["stages"]["train-topr"]["outputs"]
    assert topr_out["base_model"] == r2["stages"]["train-sft"]["outputs"]["checkpoint"]
    assert topr_out["behavior_model"] == r2["checkpoint_in"]["policy"] == r1["stages"]["train-redi"]["outputs"][
        "checkpoint"]
    assert state["checkpoints"]["policy"] == str(run / "round-002" / "train-topr" / "model")
    # the data: pairs of an accepted and a rejected answer; TOPR rows with +1 / -1 by the verdict
    judged = {r["id"]: r for part in sorted((run / "round-001" / "judged").glob("part-*.jsonl"))
              for r in read_jsonl(part)}
    verdicts = {(r["id"], s["text"]): s["accepted"] for r in judged.values() for s in r["samples"]}
    pairs = list(read_jsonl(run / "round-001" / "data" / "pairs.jsonl"))
    assert pairs and all(verdicts[(p["task_id"], p["chosen"][0]["content"])] and
                         not verdicts[(p["task_id"], p["rejected"][0]["content"])] for p in pairs)
    judged2 = {(r["id"], s["text"]): s["accepted"] for part in sorted((run / "round-002" / "judged").glob("*.jsonl"))
               for r in read_jsonl(part) for s in r["samples"]}
    samples = list(read_jsonl(run / "round-002" / "data" / "topr.jsonl"))
    assert {r["reward"] for r in samples} == {1.0, -1.0}
    assert all(judged2[(r["task_id"], r["completion"][0]["content"])] == (r["reward"] > 0) for r in samples)
    metrics = [r["metrics"] for r in state["rounds"]]
    assert metrics[1]["redi_pairs"] == len(pairs) and metrics[1]["redi_steps"] == 2
    assert metrics[2]["topr_samples"] == len(samples) and metrics[2]["topr_steps"] == 2
    assert 0 < metrics[2]["topr_neg_weight_first"] <= 1 and metrics[1]["redi_logp_neg_last"] < 0
    assert Path(state["checkpoints"]["policy"], "model.safetensors").is_file()
    # a negatives method under expert iteration is a one-line config error
    bad = write_config(tmp_path / "bad.yaml", {**config, "recipe": {"kind": "expert_iteration"}})
    result = run_cli("loop", str(bad))
    assert result.returncode == 2 and "recipe.kind=negatives" in result.stderr
