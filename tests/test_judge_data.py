"""Training data for the trained judge: bias-offset augmentation, preference rows read with file:line errors,
by-prompt splits and decontamination, verifier-ranked pairs from a loop's judged samples, and the mixture."""

from __future__ import annotations

import gzip
import json
import random
import re

import pytest

from synthloop.judges.augment import AugmentConfig, augment, confident_wrong, repetitive, truncated
from synthloop.judges.commands import PreferenceData
from synthloop.judges.preference_data import (
    PreferencePair,
    PreferenceRowError,
    decontaminate,
    judged_samples,
    read_pairs,
    split_by_prompt,
)
from synthloop.runs.inputs import DatasetInput

SHARED = __import__("conftest").SHARED
ANSWERS = [("How do I boil an egg?", "Put the egg in boiling water. Wait 9 minutes. Cool it in cold water."),
           ("What is 12 times 3?", "12 times 3 is 36. So the answer is 36."),
           ("Name a primary colour.", "Red is a primary colour. Blue and yellow are the other two."),
           ("How far is the Moon?", "The Moon is about 384400 km from Earth on average, it varies over the month.")]


def test_augmentation_makes_the_four_kinds_of_rejected_answers():
    pairs = [PreferencePair(prompt=p, chosen=a, rejected="x") for p, a in ANSWERS]
    out = augment(pairs, AugmentConfig(count=40, min_chars=10))
    kinds = {p.source for p in out}
    assert kinds == {"augment:off_topic", "augment:truncated", "augment:repetitive", "augment:confident_wrong"}
    answers = dict(ANSWERS)
    for pair in out:
        good, bad = pair.chosen, pair.rejected
        assert good == answers[pair.prompt] and bad != good
        if pair.source == "augment:off_topic":  # a fluent answer written for another prompt
            assert bad in answers.values() and bad != answers[pair.prompt]
        elif pair.source == "augment:truncated":  # cut mid-way, shorter, no closing punctuation
            assert good.startswith(bad) and len(bad) < len(good) and bad[-1] not in ".!?"
        elif pair.source == "augment:repetitive":  # longer than the good answer, one unit repeated
            assert len(bad) > len(good) and bad.count(" ".join(bad.split()[:3])) >= 3
        else:  # confident and wrong: a confident opener, numbers changed (or claims negated)
            assert bad.split(".")[0].split(":")[0] in {o.split(".")[0].split(":")[0] for o in (
                "I am absolutely certain about this.", "This is definitely correct:", "Without any doubt:",
                "As an expert, I can confirm:", "The answer is clear and well established.")}
            if re.search(r"\d", good):
                assert re.findall(r"\d+", bad) != re.findall(r"\d+", good)
    rng = random.Random(0)
    assert "36" not in confident_wrong("The answer is 36.", rng).split("is")[-1]
    assert "is not" in confident_wrong("The sky is blue.", rng)
    assert len(repetitive(ANSWERS[0][1], rng)) > len(ANSWERS[0][1]) and truncated(ANSWERS[0][1], rng)
    assert augment(pairs, AugmentConfig(count=0)) == []


def test_bad_preference_rows_are_one_line_errors_naming_file_and_line(tmp_path):
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    cases = {
        "bool.jsonl": ([good, {"prompt": "p", "chosen": True, "rejected": "b"}], ":2: chosen is bool"),
        "missing.jsonl": ([good, good, {"prompt": "p", "chosen": "a"}], ":3: missing rejected"),
        "number.jsonl": ([{"prompt": 7, "chosen": "a", "rejected": "b"}], ":1: prompt is int"),
        "messages.jsonl": ([{"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}], ":1: prompt is list"),
    }
    for name, (rows, message) in cases.items():
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        with pytest.raises(PreferenceRowError) as info:
            read_pairs(DatasetInput(path=path))
        assert str(info.value).startswith(f"{path}{message}") and "\n" not in str(info.value)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(good) + "\n\n{not json\n")
    with pytest.raises(PreferenceRowError, match=r"broken.jsonl:3: not JSON"):
        read_pairs(DatasetInput(path=broken))
    chat = tmp_path / "chat.jsonl.gz"
    with gzip.open(chat, "wt") as handle:
        handle.write(json.dumps({"prompt": [{"role": "user", "content": "hi"}], "chosen": [
            {"role": "assistant", "content": "hello"}], "rejected": "go away"}) + "\n")
    assert read_pairs(DatasetInput(path=chat))[0].chosen == [{"role": "assistant", "content": "hello"}]


def test_split_by_prompt_and_decontamination():
    pairs = [PreferencePair(prompt=f"Question {i // 2}?", chosen="a", rejected="b") for i in range(200)]
    train, held = split_by_prompt(pairs, 0.25)
    assert len(train) + len(held) == 200 and 20 < len(held) < 80
    assert not {p.prompt for p in train} & {p.prompt for p in held}
    # an hh-rlhf dialogue whose last human turn is an evaluation prompt is contaminated, whatever the punctuation
    evals = [PreferencePair(prompt="How do I bake bread?", chosen="a", rejected="b")]
    candidates = [PreferencePair(prompt="\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I BAKE bread\n\n"
                                        "Assistant:", chosen="a", rejected="b"),
                  PreferencePair(prompt="How do I bake a cake?", chosen="a", rejected="b")]
    kept, dropped = decontaminate(candidates, evals)
    assert dropped == 1 and [p.prompt for p in kept] == ["How do I bake a cake?"]


def _judged_loop(root):
    """A loop directory as synthloop/loops/judging.py writes it: one record per task, N judged samples."""
    part = root / "round-001" / "judged" / "part-00000.jsonl"
    part.parent.mkdir(parents=True)
    rows = []
    for i in range(6):
        samples = [{"text": f"The answer is {i + 5}.", "scores": {"verifier:math_answer": 1.0}},
                   {"text": "I cannot tell.", "scores": {"verifier:math_answer": 0.0}},
                   {"text": f"The answer is {i + 5}!", "scores": {"verifier:math_answer": 1.0}}]
        rows.append({"id": i, "prompt": f"What is {i} + 5?", "reference": str(i + 5),
                     "messages": [{"role": "user", "content": f"What is {i} + 5?"}], "samples": samples})
    rows.append({"id": 9, "prompt": "all wrong", "messages": [{"role": "user", "content": "all wrong"}],
                 "samples": [{"text": "no", "scores": {"verifier:math_answer": 0.0}}] * 2})
    part.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_verifier_ranked_pairs_from_a_loops_judged_samples(tmp_path):
    loop = _judged_loop(tmp_path / "loop")
    assert len(list(judged_samples(loop))) == 20
    data = PreferenceData(hh_rlhf=None, ranked=[{"path": loop, "score_field": "scores.verifier:math_answer"}])
    pairs = data.train_pairs()
    assert len(pairs) == 6  # the all-wrong task gives none
    assert all(p.rejected == "I cannot tell." and p.chosen.startswith("The answer is") for p in pairs)
    assert pairs[0].prompt == [{"role": "user", "content": "What is 0 + 5?"}]


def test_mixture_is_decontaminated_against_every_evaluation_set(tmp_path):
    prefs = tmp_path / "prefs.jsonl"
    rows = [{"prompt": f"Instruction number {i}.", "chosen": f"A careful answer to {i}.", "rejected": "No."}
            for i in range(60)]
    prefs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra_eval = tmp_path / "eval.jsonl"  # another evaluation set that shares two prompts with the training file
    extra_eval.write_text(json.dumps({"prompt": "instruction number 3"}) + "\n"
                          + json.dumps({"prompt": "Instruction  number 4!"}) + "\n")
    data = PreferenceData(hh_rlhf=SHARED / "hh_rlhf" / "harmless-base_test.jsonl.gz", hh_rlhf_limit=50,
                          datasets=[{"path": prefs, "name": "mine", "held_out_fraction": 0.3}],
                          augment={"count": 20, "min_chars": 5}, decontaminate=[{"path": extra_eval}])
    sets = data.eval_sets()
    assert set(sets) == {"hh_rlhf_held_out", "mine_held_out"} and 5 < len(sets["mine_held_out"]) < 35
    logs: list[str] = []
    train = data.train_pairs(log=logs.append)
    train_prompts = {json.dumps(p.prompt) for p in train}
    held_prompts = {json.dumps(p.prompt) for pairs in sets.values() for p in pairs}
    assert not train_prompts & held_prompts
    assert not {'"Instruction number 3."', '"Instruction number 4."'} & train_prompts
    sources = {p.source.split(":")[0] for p in train}
    assert sources == {"hh_rlhf", "mine", "augment"} and sum(p.source.startswith("augment") for p in train) <= 20
    assert any(line.startswith("data: mine:") for line in logs)
