"""Verifiable instruction synthesis: IFEval constraint draws, their round trip into the verifier, the program, and
IFEval's metrics."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from helpers import SEED_TASKS

from synthloop.configs import ConfigError, load_config
from synthloop.engines.types import Sampling
from synthloop.judges.verifiers import IFEvalVerifier
from synthloop.judges.verifiers.ifeval import check, checker, conflicts, instruction_ids
from synthloop.judges.verifiers.ifeval_constraints import (
    compatible,
    conflicting,
    draw_constraints,
    draw_ids,
    sample_kwargs,
    stated,
    statement,
)
from synthloop.judges.verifiers.ifeval_metrics import compare_scores, ifeval_scores
from synthloop.judges.verifiers.ifeval_responses import breaking_response, satisfying_response
from synthloop.synth import VerifiableInstructions, build
from synthloop.synth.generate import generate
from synthloop.synth.generate_config import GenerateConfig
from synthloop.synth.verifiable_instructions import clean_request

SHARED = __import__("conftest").SHARED
IFEVAL = SHARED / "ifeval" / "input_data.jsonl"
TASK = "Write a short story about a lighthouse keeper who finds a message in a bottle."
REPEATED = "Write a short story about a lighthouse keeper who finds a message in a bottle"
LANGUAGE = "language:response_language"


def _ifeval_rows() -> list[dict]:
    return [json.loads(line) for line in IFEVAL.open()]


def _draws(n: int, seed: int = 0):
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        drawn = draw_constraints(rng, rng.choice([1, 2, 3]), text=TASK)
        yield [(c, {"prompt_to_repeat": REPEATED} if c == "combination:repeat_prompt" else kw) for c, kw in drawn]


def test_draws_are_compatible_seeded_and_cover_every_kind():
    draws = list(_draws(1500))
    assert draws == list(_draws(1500))  # seeded
    seen = Counter(i for d in draws for i, _ in d)
    assert set(seen) == set(instruction_ids()) and len(seen) == 25
    table = conflicts()
    for d in draws:
        ids = [i for i, _ in d]
        assert len(set(ids)) == len(ids) and compatible(ids)
        assert not any(b in table[a] for a in ids for b in ids if a != b)  # the reference's map, symmetric
        if "detectable_format:constrained_response" in ids:
            assert ids == ["detectable_format:constrained_response"]  # it conflicts with every other kind
    assert conflicting("change_case:english_lowercase", "change_case:english_capital")
    assert conflicting("keywords:letter_frequency", LANGUAGE)  # one of ours: no Latin letters to count
    with pytest.raises(ValueError, match="cannot draw 2"):
        draw_ids(random.Random(0), 2, ["detectable_format:json_format", "detectable_format:title"])
    with pytest.raises(ValueError, match="unknown IFEval"):
        draw_ids(random.Random(0), 1, ["keywords:nonsense"])


def test_kwargs_have_ifevals_row_format_and_survive_the_checker():
    """Drawn kwargs name exactly the keys IFEval's own rows use, and the reference checker built from them reports
    the same values back (nothing it would replace with a random default)."""
    keys: dict[str, set[frozenset]] = {}
    for row in _ifeval_rows():
        for i, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            keys.setdefault(i, set()).add(frozenset(k for k, v in kw.items() if v is not None))
    for d in _draws(600):
        for i, kw in d:
            assert frozenset(kw) in keys[i], (i, kw)
            if kw:
                assert checker(i, kw).get_instruction_args() == {k: sorted(v) if isinstance(v, list) else v
                                                                 for k, v in kw.items()}, (i, kw)


def test_round_trip_satisfying_passes_and_breaking_fails_exactly_that_constraint():
    """kwargs -> a response built to satisfy them passes the verifier (the kwargs as its reference); a response
    built to break constraint j fails j and only j. Built for every kind but response_language (satisfying)."""
    verifier = IFEvalVerifier()
    satisfied, broken, unbuilt = Counter(), Counter(), Counter()
    for d in _draws(400, seed=1):
        ids, kwargs = [i for i, _ in d], [kw for _, kw in d]
        reference = {"instruction_id_list": ids, "kwargs": kwargs, "prompt": REPEATED}
        response = satisfying_response(d)
        if response is None:
            assert LANGUAGE in ids
        else:
            verdict = verifier.verify(response, reference)
            assert verdict.passed, (d, response, verdict.reason)
            satisfied.update(ids)
        for j in range(len(d)):
            response = breaking_response(d, j)
            if response is None:
                unbuilt[ids[j]] += 1
                continue
            assert check(response, ids, kwargs) == [x != j for x in range(len(d))], (d, j, response)
            broken[ids[j]] += 1
    assert set(satisfied) == set(instruction_ids()) - {LANGUAGE}
    assert set(broken) == set(instruction_ids())
    # breaking one is refused only when a phrase the others need holds what must go (e.g. an end phrase with the
    # letter to avoid, a repeated request naming the keywords)
    assert sum(unbuilt.values()) < 0.1 * sum(broken.values()), unbuilt


def test_statements_state_their_values_and_a_lost_value_is_noticed():
    for d in _draws(300, seed=2):
        for i, kw in d:
            assert stated(i, kw, statement(i, kw)), (i, kw, statement(i, kw))
    words = {"relation": "at least", "num_words": 300}
    assert statement("length_constraints:number_words", words) == "Answer with at least 300 words."
    assert stated("length_constraints:number_words", words, "Please write no fewer than 300 words.")
    assert not stated("length_constraints:number_words", words, "Answer with at least 200 words.")
    assert not stated("length_constraints:number_words", words, "Answer with less than 300 words.")
    keywords = {"keywords": ["river", "stone"]}
    assert statement("keywords:existence", keywords) == 'Include the keywords "river" and "stone" in the response.'
    assert not stated("keywords:existence", keywords, "Mention the river.")
    assert stated("punctuation:no_comma", {}, "Do not use any commas.")
    assert stated("detectable_format:number_bullet_lists", {"num_bullets": 3}, "Use three bullet points.")
    assert not stated("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Add a P.S. at the end.")
    assert not stated("detectable_content:postscript", {"postscript_marker": "P.S."}, "Dear Bob, ... P.S. See you!")
    assert not stated("detectable_format:constrained_response", {}, "My answer is yes.")


def test_kwargs_use_the_tasks_words_and_stay_consistent():
    rng = random.Random(3)
    for _ in range(200):
        kw = dict(sample_kwargs(rng, ["keywords:existence", "keywords:forbidden_words", "startend:end_checker"],
                                text=TASK))
        required = kw["keywords:existence"]["keywords"] + kw["startend:end_checker"]["end_phrase"].lower().split()
        assert not set(kw["keywords:forbidden_words"]["forbidden_words"]) & set(required)
    first = dict(sample_kwargs(random.Random(0), ["keywords:existence"], text=TASK))["keywords:existence"]
    assert first["keywords"][0] in TASK.lower()  # the first keyword is always one of the task's own words
    # a "less than" word limit leaves room for the sentences and the structure asked for
    for i in range(300):
        kw = dict(sample_kwargs(random.Random(i), ["length_constraints:number_words",
                                                   "length_constraints:number_sentences",
                                                   "detectable_format:number_bullet_lists"]))
        words, sentences = kw["length_constraints:number_words"], kw["length_constraints:number_sentences"]
        if words["relation"] == "less than" and sentences["relation"] == "at least":
            assert words["num_words"] >= 8 * sentences["num_sentences"]


def _program(tmp_path, **overrides):
    return VerifiableInstructions(seed_tasks=SEED_TASKS, **overrides)


def _record(program: VerifiableInstructions, base_task: str, constraints, rewrite: str) -> dict:
    return program.to_record({}, program.assemble(base_task, constraints, rewrite))


def test_ifeval_prompts_are_refused_as_base_tasks(tmp_path):
    rows = _ifeval_rows()
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join(json.dumps({"instruction": t, "instances": [{"input": ""}]}) for t in
                              [rows[0]["prompt"], TASK, rows[5]["prompt"]]))
    program = VerifiableInstructions(seed_tasks=seeds)
    assert program.pool == [TASK]
    assert len(program.refused) == 2 and all("13-gram with ifeval row" in r for r in program.refused)
    # a dataset source, and a record whose base task came from elsewhere (generated), are checked the same way
    data = tmp_path / "tasks.jsonl"
    data.write_text("\n".join(json.dumps({"instruction": t}) for t in [TASK, rows[3]["prompt"]]))
    from_data = VerifiableInstructions(inputs={"path": str(data)})
    assert from_data.pool == [TASK] and from_data.config.base_tasks == "dataset"
    record = _record(program, rows[3]["prompt"], [("punctuation:no_comma", {})], rows[3]["prompt"] + " No commas.")
    assert "13-gram with ifeval row 3" in program.accept(record)
    assert program.accept(_record(program, TASK, [("punctuation:no_comma", {})], TASK + " Do not use commas.")) is None
    only_ifeval = tmp_path / "bad.jsonl"
    only_ifeval.write_text(json.dumps({"instruction": rows[0]["prompt"]}))
    with pytest.raises(ConfigError, match="no base task left"):
        build(load_config(GenerateConfig, data={"program": {"kind": "verifiable_instructions",
                                                            "inputs": {"path": str(only_ifeval)}}}).program)


def test_accept_restates_lost_constraints_and_drops_bad_rewrites(tmp_path):
    program = _program(tmp_path)
    words = ("length_constraints:number_words", {"relation": "at least", "num_words": 300})
    comma = ("punctuation:no_comma", {})
    # the rewrite dropped the number: its statement is appended verbatim, and the prompt states everything
    record = _record(program, TASK, [words, comma], "Write me a long story about a lighthouse keeper who finds a "
                                                    "message in a bottle, and please avoid commas.")
    assert record["restated"] == ["length_constraints:number_words"] and program.accept(record) is None
    assert record["prompt"].endswith("Answer with at least 300 words.")
    assert all(stated(i, kw, record["prompt"]) for i, kw in [words, comma])
    assert record["kwargs"] == [words[1], {}] and record["instruction_id_list"] == [words[0], comma[0]]
    strict = _program(tmp_path, on_lost="drop")
    assert strict.accept(_record(strict, TASK, [words], "Write a long lighthouse keeper story about a message "
                                                        "in a bottle.")) == "lost constraints: " + words[0]
    # text that states every constraint but is not a request is dropped
    assert program.accept(_record(program, TASK, [comma], "Task: {task} no commas")).startswith("copied")
    assert program.accept(_record(program, TASK, [comma], "Write a poem about cats without commas.")).startswith(
        "lost the task")
    long_answer = "Once upon a time a lighthouse keeper found a message in a bottle. " * 20 + "No commas."
    assert program.accept(_record(program, TASK, [comma], long_answer)).startswith("too long")
    # text that states none is not used: the prompt is the task and the templated statements
    for text in ["", "Task: {task}", "Once upon a time. " * 50]:
        record = _record(program, TASK, [words, comma], text)
        assert record["templated"] and program.accept(record) is None
        assert record["prompt"] == TASK + " Answer with at least 300 words. In your entire response, refrain from " \
            "the use of any commas."
    assert strict.accept(_record(strict, TASK, [comma], "")) == "lost constraints: punctuation:no_comma"
    template = _program(tmp_path, on_lost="template")
    record = _record(template, TASK, [words, comma], TASK + " Please avoid commas.")
    assert record["templated"] and record["restated"] == [words[0]] and "Please" not in record["prompt"]
    # a placeholder example in the constraint is not a copied template slot
    placeholders = ("detectable_content:number_placeholders", {"num_placeholders": 2})
    assert program.accept(_record(program, TASK, [placeholders], TASK + " Use at least 2 placeholders in square "
                                                                        "brackets, such as [address].")) is None
    # repeat_prompt: the request (with restated statements) is what must be repeated; its statement follows it
    repeat = ("combination:repeat_prompt", {"prompt_to_repeat": ""})
    record = _record(program, TASK, [comma, repeat], TASK + " Do not use any commas.")
    assert record["kwargs"][1] == {"prompt_to_repeat": TASK + " Do not use any commas."}
    assert record["prompt"].startswith(TASK + " Do not use any commas.\nFirst repeat the request word for word")
    assert satisfying_response(list(zip(record["instruction_id_list"], record["kwargs"], strict=True))) is not None
    record = _record(program, TASK, [comma, repeat], "Write, please, " + TASK + " Do not use any commas.")
    assert program.accept(record).startswith("unsatisfiable")
    # rewrite: constraints keeps the task verbatim; only the model's wording of the constraints is checked
    wording = _program(tmp_path, rewrite="constraints")
    record = _record(wording, TASK, [words, comma], "Please keep it comma-free and use at least 300 words.")
    assert record["prompt"] == TASK + " Please keep it comma-free and use at least 300 words."
    assert record["restated"] == [] and wording.accept(record) is None
    record = _record(wording, "Summarize this text:\nThe 300 words below.", [words, comma], "Keep it long, no commas.")
    assert record["restated"] == [words[0]]  # the task's own "300" does not count as stating the constraint
    assert record["prompt"] == "Summarize this text:\nThe 300 words below.\n\nKeep it long, no commas. " \
        "Answer with at least 300 words."
    assert wording.accept(_record(wording, TASK, [comma], "")) is None  # templated
    assert wording.accept(_record(wording, TASK, [comma], "Do not use commas. " * 30)).startswith("too long")
    assert wording.accept(_record(wording, TASK, [repeat], "")) is None
    assert clean_request('"[No commas at all, please."') == "No commas at all, please."


def test_program_end_to_end_on_the_tiny_model(tiny_engine, tmp_path):
    """Through the runner: every kept record is an IFEval row whose own kwargs the verifier checks, and whose
    prompt states every constraint (restated where the model lost it)."""
    program = VerifiableInstructions(seed_tasks=SEED_TASKS, min_task_overlap=0.0, max_length_ratio=100.0, seed=1)
    summary = generate(program, engine=tiny_engine, run=tmp_path / "vi", max_items=8,
                       sampling=Sampling(max_tokens=64, temperature=1.0), json_max_chars=40, progress=False)
    assert summary.kept + summary.filtered + summary.failed == 8 and summary.kept >= 4, summary
    records = list(summary.run.iter_records())
    items = [next(i for n, i in enumerate(program.inputs()) if n == r["id"]) for r in records]
    verifier = IFEvalVerifier()
    for record, item in zip(records, items, strict=True):
        assert record["base_task"] == item["base_task"] and record["provenance"]["program"] == program.name
        pairs = list(zip(record["instruction_id_list"], record["kwargs"], strict=True))
        assert 1 <= len(pairs) <= 3 and compatible(record["instruction_id_list"])
        assert all(stated(i, kw, record["prompt"]) for i, kw in pairs)
        response = satisfying_response(pairs)
        if response is not None:
            assert verifier.verify(response, record).passed
            assert not verifier.verify(breaking_response(pairs, 0) or "", record).passed
    # the same config through a generate config, base tasks proposed by the model
    config = load_config(GenerateConfig, data={"program": {"kind": "verifiable_instructions", "base_tasks": "generated",
                                                           "seed_tasks": str(SEED_TASKS), "num_examples": 2,
                                                           "min_task_overlap": 0, "max_length_ratio": 100}})
    generated = build(config.program)
    summary = generate(generated, engine=tiny_engine, run=tmp_path / "gen", max_items=2,
                       sampling=Sampling(max_tokens=64, temperature=1.0), json_max_chars=40, progress=False)
    rows = list(summary.run.iter_records()) + [f["record"] for f in summary.run.iter_filtered()]
    assert len(rows) + summary.failed == 2 and all(r["base_task"] not in generated.seeds for r in rows)
    with pytest.raises(ConfigError, match="base_tasks: dataset needs inputs"):
        load_config(GenerateConfig, data={"program": {"kind": "verifiable_instructions", "base_tasks": "dataset"}})


ROWS = [
    {"prompt": "a", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"prompt": "b", "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
     "kwargs": [{}, {}]},
    {"prompt": "c", "instruction_id_list": ["detectable_format:title", "keywords:existence"],
     "kwargs": [{}, {"keywords": ["river"]}]},
]


def test_metrics_on_known_rows():
    before = ifeval_scores([
        "No commas here.",                        # follows
        "Sure, here it is:\nall lowercase here",  # strict: neither (capital, comma); loose: lowercase only
        "<<Title>> about the river",              # both
    ], ROWS)
    assert (before.prompts, before.instructions) == (3, 5)
    assert before.prompt_strict == pytest.approx(2 / 3) and before.instruction_strict == pytest.approx(3 / 5)
    assert before.prompt_loose == pytest.approx(3 / 3) and before.instruction_loose == pytest.approx(5 / 5)
    assert before.families["punctuation"].strict == pytest.approx(1 / 2)
    assert before.families["change_case"].strict == 0.0 and before.families["change_case"].loose == 1.0
    assert before.by_instruction["keywords:existence"].instructions == 1
    after = ifeval_scores(["No, commas here.", "all lowercase and no commas", "<<Title>> about the river"], ROWS)
    diff = compare_scores(before, after)
    assert (diff.gained, diff.lost, diff.both, diff.neither) == (1, 1, 1, 0)
    assert diff.p_value == pytest.approx(1.0)
    assert diff.families["change_case"].before == 0.0 and diff.families["change_case"].after == 1.0
    assert compare_scores(before, before).p_value == 1.0
    ins = compare_scores(before, after, "instruction_strict")
    assert ins.units == 5 and (ins.gained, ins.lost) == (2, 1)
    with pytest.raises(ValueError, match="same prompts"):
        compare_scores(before, ifeval_scores(["x"], ROWS[:1]))
    with pytest.raises(ValueError, match="2 responses for 3 rows"):
        ifeval_scores(["x", "y"], ROWS)


def test_mcnemar_exact_p_value():
    rows = [ROWS[0]] * 10
    before = ifeval_scores(["a, b"] * 10, rows)
    after = ifeval_scores(["a b"] * 8 + ["a, b"] * 2, rows)
    diff = compare_scores(before, after)
    assert (diff.gained, diff.lost) == (8, 0)
    assert diff.p_value == pytest.approx(2 * 0.5 ** 8)  # two-sided exact binomial


def test_metrics_on_gpt4_responses_match_the_paper():
    """The IFEval paper's GPT-4: prompt-level strict 76.9% / loose 79.3%, instruction-level 83.6% / 85.4%."""
    rows = _ifeval_rows()
    responses = [json.loads(line)["response"]
                 for line in (SHARED / "ifeval" / "input_response_data_gpt4_20231107_145030.jsonl").open()]
    scores = ifeval_scores(responses, rows)
    assert scores.prompts == 541 and scores.instructions == 834
    assert scores.prompt_strict == pytest.approx(0.769, abs=0.004)
    assert scores.prompt_loose == pytest.approx(0.793, abs=0.004)
    assert scores.instruction_strict == pytest.approx(0.836, abs=0.004)
    assert scores.instruction_loose == pytest.approx(0.854, abs=0.004)
    assert ifeval_scores(responses, rows).strict == scores.strict  # deterministic (a row's random letter is seeded)
