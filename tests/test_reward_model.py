"""The MiniLM reward model: Bradley-Terry training learns a planted preference, the artifact reloads,
and it works as a TRL reward function and as a filter."""

from __future__ import annotations

import math

import pytest

from synthloop.judges.base import JudgeItem
from synthloop.judges.panel import Member, Panel
from synthloop.judges.preference_data import PreferencePair, load_hh_rlhf, pairs_from_ranked, split_hh_dialogue
from synthloop.judges.reward_model import RewardModel, TrainConfig

SHARED = __import__("conftest").SHARED
TOPICS = ["bake bread", "fix a bike tire", "learn chess", "plant tomatoes", "write a resume", "start running",
          "save money", "learn guitar", "clean a kitchen", "study for exams", "paint a wall", "brew coffee",
          "train a puppy", "tie a tie", "change a lightbulb", "make pancakes", "set up a tent", "knit a scarf",
          "wash a car", "sharpen a knife", "fold a shirt", "cook rice", "iron a shirt", "fly a kite"]
HELPFUL = "Happy to help! To {t}, start with the basics, take it step by step, and check your progress as you go."
RUDE = "Figure out how to {t} yourself. Stop wasting my time with stupid questions, idiot."


def planted(topics):
    return [PreferencePair(prompt=f"\n\nHuman: How do I {t}?\n\nAssistant:", chosen=HELPFUL.format(t=t),
                           rejected=RUDE.format(t=t)) for t in topics]


@pytest.fixture(scope="module")
def trained():
    rm = RewardModel.create(max_prompt_tokens=16, max_response_tokens=32, inference_dtype="float32")
    train, test = planted(TOPICS[:16]), planted(TOPICS[16:])
    before = rm.accuracy(test)
    metrics = rm.fit(train, TrainConfig(epochs=3, batch_size=8, lr=1e-4, head_lr=3e-3), eval_pairs=test)
    return rm, metrics, before, test


def test_loss_falls_and_planted_preference_is_learned(trained):
    rm, metrics, before, test = trained
    assert metrics["steps"] == 6
    assert metrics["loss_last"] < metrics["loss_first"] - 0.2, metrics["losses"]
    assert metrics["held_out_accuracy"] >= 0.95 and rm.accuracy(test) >= 0.95
    assert before < 0.95 or metrics["loss_first"] > 0.5  # it was not solved before training


def test_artifact_roundtrip_and_judge_interface(trained, tmp_path):
    rm, metrics, _, test = trained
    path = rm.save(tmp_path / "model")
    assert {p.name for p in path.iterdir()} >= {"config.json", "metrics.json", "head.pt", "encoder"}
    again = RewardModel.load(path)
    assert again.config.inference_dtype == "float32" and again.metrics["steps"] == metrics["steps"]
    items = [JudgeItem(prompt=test[0].prompt, response=test[0].chosen),
             JudgeItem(prompt=test[0].prompt, response=test[0].rejected)]
    first, second = rm.score(items), again.score(items)
    assert all(math.isclose(a.score, b.score, rel_tol=1e-4, abs_tol=1e-4) for a, b in zip(first, second, strict=False))
    assert first[0].score > first[1].score
    with pytest.raises(FileNotFoundError, match="not a reward-model artifact"):
        RewardModel.load(tmp_path)


def test_a_judge_with_fewer_encoder_layers_learns_and_reloads_with_them(tmp_path):
    """`model.encoder_layers: 2` keeps MiniLM's first 2 of 6 layers: it still learns the planted preference, is
    saved with 2 layers and reloads with them (same scores); asking for more layers than exist is one clear error."""
    rm = RewardModel.create(max_prompt_tokens=16, max_response_tokens=32, inference_dtype="float32", encoder_layers=2)
    assert len(rm.net.encoder.encoder.layer) == 2
    train, test = planted(TOPICS[:16]), planted(TOPICS[16:])
    rm.fit(train, TrainConfig(epochs=3, batch_size=8, lr=1e-4, head_lr=3e-3))
    assert rm.accuracy(test) >= 0.95
    again = RewardModel.load(rm.save(tmp_path / "two"))
    assert len(again.net.encoder.encoder.layer) == 2 and again.config.encoder_layers == 2
    items = [JudgeItem(prompt=p.prompt, response=p.chosen) for p in test[:3]]
    assert all(math.isclose(a.score, b.score, abs_tol=1e-4) for a, b in zip(rm.score(items), again.score(items),
                                                                              strict=True))
    with pytest.raises(ValueError, match="encoder_layers: 7, but all-minilm-l6-v2 has 6 layers"):
        RewardModel.create(encoder_layers=7)


def test_trl_reward_function_signature(trained):
    rm, *_ = trained
    reward = rm.as_reward_function()
    prompts = [[{"role": "user", "content": "How do I fly a kite?"}]] * 2
    completions = [[{"role": "assistant", "content": HELPFUL.format(t="fly a kite")}],
                   [{"role": "assistant", "content": RUDE.format(t="fly a kite")}]]
    values = reward(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None)
    assert len(values) == 2 and values[0] > values[1]
    assert reward.__name__ == "synthloop_reward_model"
    assert reward(prompts=["p"], completions=["c"])[0] == pytest.approx(rm.rewards(["p"], ["c"])[0])


def test_reward_model_as_a_filter(trained):
    from synthloop.judges.filters.score import JudgeThreshold, JudgeThresholdConfig

    rm, *_ = trained
    records = [{"id": i, "messages": [{"role": "user", "content": f"How do I {t}?"},
                                      {"role": "assistant", "content": (HELPFUL if i % 2 == 0 else RUDE).format(t=t)}]}
               for i, t in enumerate(TOPICS[16:])]
    cfg = JudgeThresholdConfig(judge={"kind": "reward_model", "path": "unused", "min_score": 0.0})
    result = JudgeThreshold(cfg, Panel([Member(rm, min_score=0.0)])).apply(records)
    assert sorted(r["id"] for r in result.kept) == [0, 2, 4, 6]
    assert all("reward_model" in r["scores"] for r in result.kept)
    assert all(d.reason.startswith("reward_model: score") for d in result.dropped)


def test_hh_rlhf_split_is_deterministic_and_disjoint():
    path = SHARED / "hh_rlhf" / "harmless-base_test.jsonl.gz"
    train, held = load_hh_rlhf(path), load_hh_rlhf(path, split="held_out")
    assert len(train) + len(held) == len(load_hh_rlhf(path, split="all"))
    assert 0.15 < len(held) / (len(train) + len(held)) < 0.25
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    assert [p.prompt for p in load_hh_rlhf(path, split="held_out")] == [p.prompt for p in held]
    prompt, chosen, rejected = split_hh_dialogue("\n\nHuman: hi\n\nAssistant: hello", "\n\nHuman: hi\n\nAssistant: go")
    assert (prompt, chosen, rejected) == ("\n\nHuman: hi\n\nAssistant:", "hello", "go")


def test_pairs_from_verifier_ranked_records():
    from synthloop.judges.verifiers import MathAnswerVerifier

    verifier = MathAnswerVerifier()
    records = [{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": r}], "answer": "4"}
               for r in ("The answer is 4.", "It is 5.", "#### 4")]
    records.append({"messages": [{"role": "user", "content": "alone?"}, {"role": "assistant", "content": "1"}],
                    "answer": "1"})
    pairs = pairs_from_ranked(records, lambda r: verifier.verify(r["messages"][1]["content"], r["answer"]).score)
    assert len(pairs) == 1
    assert pairs[0].rejected == "It is 5." and pairs[0].chosen in ("The answer is 4.", "#### 4")


def test_grpo_trainer_trains_with_the_reward_function(tiny_model_path, tmp_path):
    """The reward function in TRL's GRPOTrainer (tiny policy, one step): TRL calls it and logs its rewards."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rm = RewardModel.create(max_prompt_tokens=16, max_response_tokens=16)
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": f"Say hi {i}"}]} for i in range(4)])
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=8, max_steps=1, bf16=False, fp16=False, use_cpu=True, report_to="none",
                      dataloader_pin_memory=False, gradient_checkpointing=False, logging_steps=1, save_strategy="no")
    trainer = GRPOTrainer(model=str(tiny_model_path), reward_funcs=[rm.as_reward_function()], args=args,
                          train_dataset=ds)
    trainer.train()
    logged = trainer.state.log_history[0]
    assert "rewards/synthloop_reward_model/mean" in logged
    assert math.isfinite(float(logged["rewards/synthloop_reward_model/std"]))


def test_cross_encoder_trained_by_trl_learns_the_planted_preference(tmp_path):
    """kind cross_encoder: TRL's RewardTrainer on MiniLM as a sequence classifier; the artifact reloads through
    RewardModel.load (what `judge: {kind: reward_model, path: ...}` calls)."""
    from synthloop.judges.cross_encoder import CrossEncoderRewardModel
    from synthloop.judges.reward_model import RewardModelConfig, create_reward_model

    rm = create_reward_model(RewardModelConfig(architecture="cross_encoder", max_prompt_tokens=16,
                                               max_response_tokens=32, inference_dtype="float32"))
    train, test = planted(TOPICS[:16]), planted(TOPICS[16:])
    metrics = rm.fit(train, TrainConfig(epochs=3, batch_size=8, lr=1e-4))
    assert metrics["steps"] == 6 and metrics["trainer"] == "trl.RewardTrainer"
    assert metrics["loss_last"] < metrics["loss_first"], metrics["losses"]
    assert rm.accuracy(test) >= 0.95
    again = RewardModel.load(rm.save(tmp_path / "ce"))
    assert isinstance(again, CrossEncoderRewardModel)
    assert again.rewards([test[0].prompt], [test[0].chosen])[0] == pytest.approx(
        rm.rewards([test[0].prompt], [test[0].chosen])[0], abs=1e-4)


def test_judge_learns_a_planted_preference_from_verifier_ranked_loop_samples(tmp_path):
    """Loop samples judged by the math verifier -> passing vs failing pairs -> a judge that prefers the answer
    stating a number (the passing kind) on prompts it never saw."""
    import json

    from synthloop.judges.commands import PreferenceData
    from synthloop.judges.verifiers import MathAnswerVerifier

    verifier = MathAnswerVerifier()
    part = tmp_path / "loop" / "round-001" / "judged" / "part-00000.jsonl"
    part.parent.mkdir(parents=True)
    rows, held = [], []
    for i in range(40):
        a, b = i % 7 + 2, i // 7 + 3
        prompt = f"Sam has {a} boxes with {b} pens in each. How many pens does Sam have?"
        texts = [f"Sam has {a * b} pens.", "I am not sure, it is hard to say how many there are."]
        if i >= 32:
            held.append(PreferencePair(prompt=prompt, chosen=texts[0], rejected=texts[1]))
            continue
        samples = [{"text": t, "scores": {"verifier:math_answer": verifier.verify(t, str(a * b)).score}}
                   for t in texts]
        rows.append({"id": i, "prompt": prompt, "messages": [{"role": "user", "content": prompt}],
                     "samples": samples})
    part.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = PreferenceData(hh_rlhf=None, ranked=[{"path": part.parents[2],
                                                  "score_field": "scores.verifier:math_answer"}]).train_pairs()
    assert len(pairs) == 32
    rm = RewardModel.create(max_prompt_tokens=24, max_response_tokens=16, inference_dtype="float32")
    rm.fit(pairs, TrainConfig(epochs=2, batch_size=8, lr=1e-4, head_lr=3e-3))
    assert rm.accuracy(held) >= 0.95
