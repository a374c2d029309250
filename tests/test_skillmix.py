"""Instruct-SkillMix: skill extraction, the inventory artifact, balanced skill draws and their coverage."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import pytest
import yaml
from helpers import SEED_TASKS, run_cli

from synthloop.configs import ConfigError, load_config
from synthloop.engines.types import Sampling
from synthloop.runs.jsonl import AppendLog, next_part
from synthloop.runs.run_dir import RunConflictError, RunDir
from synthloop.synth import SkillExtraction, SkillInventory, SkillMix, build, build_inventory
from synthloop.synth.generate import generate
from synthloop.synth.generate_config import GenerateConfig
from synthloop.synth.skill_inventory import normalize_skill
from synthloop.synth.skillmix import coverage, draw_skill_sets

SKILLS = ["summarizing text", "budget planning", "persuasive writing", "unit conversion", "recipe adaptation",
          "code debugging", "historical analysis", "poetry writing", "time management", "data interpretation"]


def _pairs(draw):
    return [tuple(sorted(p)) for p in itertools.combinations(draw, 2)]


def test_balanced_draws_cover_every_pair_once_before_any_twice():
    n = 10
    draws = list(itertools.islice(draw_skill_sets(n, 2, seed=3), 2 * math.comb(n, 2)))
    first, second = draws[: math.comb(n, 2)], draws[math.comb(n, 2):]
    assert Counter(p for d in first for p in _pairs(d)) == Counter(itertools.combinations(range(n), 2))
    assert Counter(p for d in second for p in _pairs(d)) == Counter(itertools.combinations(range(n), 2))
    assert all(len(set(d)) == 2 for d in draws)
    assert draws == list(itertools.islice(draw_skill_sets(n, 2, seed=3), len(draws)))  # seeded: item i is fixed
    assert draws != list(itertools.islice(draw_skill_sets(n, 2, seed=4), len(draws)))
    # k=3 (no perfect triple cover of 12 skills exists): every pair within 1.5x the minimum draws, none 3 times
    k3 = list(itertools.islice(draw_skill_sets(12, 3, seed=0), math.comb(12, 2) // 2))
    uses = Counter(p for d in k3 for p in _pairs(d))
    assert len(uses) == math.comb(12, 2) and max(uses.values()) <= 2
    # the paper's uniform draws leave pairs uncovered at the same budget
    uniform = list(itertools.islice(draw_skill_sets(n, 2, seed=3, balanced=False), math.comb(n, 2)))
    assert len({p for d in uniform for p in _pairs(d)}) < math.comb(n, 2)
    with pytest.raises(ValueError, match="cannot draw 3"):
        next(draw_skill_sets(2, 3))


def test_coverage_stats():
    stats = coverage([["a", "b"], ["a", "c"], ["a", "b"]], ["a", "b", "c", "d"])
    assert (stats.records, stats.pairs, stats.pairs_covered) == (3, 6, 2)
    assert (stats.pair_uses_min, stats.pair_uses_max, stats.skill_uses_min, stats.skill_uses_max) == (0, 2, 0, 3)
    assert stats.skills_used == 3 and "pairs covered 2/6 (33%)" in stats.summary()


def test_inventory_clusters_names_and_round_trips(tmp_path):
    records = [{"skills": ["Essay writing", "writing essays", "1. Code_Debugging"], "topic": "school"},
               {"skills": ["debugging code", "unit conversion", "🌟🌟", "The ability to do many things well"]},
               {"skills": ["essay writing", "converting units"]}]
    inventory = build_inventory(records, similarity=0.85)
    by_name = {s.name: s for s in inventory.skills}
    assert set(by_name) == {"essay writing", "code debugging", "unit conversion"}  # junk names dropped
    assert by_name["essay writing"].count == 3 and by_name["essay writing"].aliases == ["writing essays"]
    assert by_name["essay writing"].topics == ["school"] and by_name["unit conversion"].count == 2
    exact = build_inventory(records, similarity=1.0)
    assert len(exact.skills) == 6 and build_inventory(records, min_count=3).names() == ["essay writing"]
    path = inventory.save(tmp_path / "skills.yaml")
    assert SkillInventory.load(path) == inventory and path.read_text().startswith("# Skill inventory")
    # users edit it: a description, a new skill
    data = yaml.safe_load(path.read_text())
    data["skills"][0]["description"] = "arguing a point in paragraphs"
    data["skills"].append({"name": "tax law"})
    path.write_text(yaml.safe_dump(data))
    edited = SkillInventory.load(path)
    assert edited.skills[0].prompt_text() == "essay writing: arguing a point in paragraphs" and len(edited.skills) == 4
    (tmp_path / "plain.txt").write_text("# mine\nTax law\nbudget planning\n\n")
    assert SkillInventory.load(tmp_path / "plain.txt").names() == ["tax law", "budget planning"]
    data["skills"].append({"name": "tax law"})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="listed twice"):
        SkillInventory.load(path)
    assert normalize_skill("Skill 2: Unit-Conversion.") == "unit conversion" and normalize_skill("str") == ""
    assert normalize_skill("premise 1") == normalize_skill("python jinja 3.2.0") == ""
    assert normalize_skill("3d modeling") == "3d modeling"


def test_skill_extraction_from_a_dataset_and_from_topics(tiny_engine, tmp_path):
    sampling = Sampling(max_tokens=96, temperature=1.0)
    program = SkillExtraction(inputs={"path": str(SEED_TASKS), "columns": {"instruction": "instruction"}, "limit": 6})
    summary = generate(program, engine=tiny_engine, run=tmp_path / "se", sampling=sampling, json_max_chars=20,
                       progress=False)
    assert summary.kept + summary.filtered == 6 and summary.failed == 0
    first = json.loads(SEED_TASKS.read_text().splitlines()[0])["instruction"]
    rows = list(summary.run.iter_records()) + [f["record"] for f in summary.run.iter_filtered()]
    assert first in {r["instruction"] for r in rows}
    for r in rows:
        assert all(normalize_skill(s) == s and s for s in r["skills"]) and len(r["skills"]) <= 5
        assert r["provenance"]["program"] == "skill_extraction"
    assert all(f["reason"] == "no usable skill names" for f in summary.run.iter_filtered())
    topics = SkillExtraction(topics=["cooking", "tax law"], samples_per_topic=2)
    assert list(topics.inputs()) == [{"topic": "cooking"}, {"topic": "tax law"}] * 2
    with pytest.raises(ConfigError, match="exactly one of inputs"):
        load_config(GenerateConfig, data={"program": {"kind": "skill_extraction"}})


def test_skillmix_records_carry_their_skills_and_cover_pairs(tiny_engine, tmp_path):
    (tmp_path / "skills.txt").write_text("\n".join(SKILLS))
    program = SkillMix(skills=tmp_path / "skills.txt", min_response_words=1, min_instruction_words=1)
    summary = generate(program, engine=tiny_engine, run=tmp_path / "mix", num_records=12,
                       sampling=Sampling(max_tokens=64, temperature=1.0), json_max_chars=40, progress=False)
    records = list(summary.run.iter_records())
    assert len(records) == 12
    for r in records:
        assert len(r["skills"]) == 2 and set(r["skills"]) <= set(SKILLS) and r["query_type"]
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["provenance"]["program"] == "skillmix"
    items = list(itertools.islice(program.inputs(), 45))
    assert coverage([i["skills"] for i in items], SKILLS).pairs_covered == 45  # all pairs in 45 items
    assert [r["skills"] for r in records] == [items[r["id"]]["skills"] for r in records]
    # an edited inventory is a different run: reusing the directory is refused
    (tmp_path / "skills.txt").write_text("\n".join(SKILLS + ["tax law"]))
    with pytest.raises(RunConflictError, match="inventory_sha256"):
        generate(SkillMix(skills=tmp_path / "skills.txt"), engine=tiny_engine, run=tmp_path / "mix", num_records=1,
                 progress=False)
    too_few = load_config(GenerateConfig, data={"program": {"kind": "skillmix", "skills": str(tmp_path / "skills.txt"),
                                                            "max_skills": 2, "k": 3}})
    with pytest.raises(ConfigError, match="fewer than k=3"):
        build(too_few.program)


def test_skills_cli_build_show_coverage(tmp_path):
    """The CLI on real run directories: an extraction run's names -> skills.yaml -> coverage of a skillmix run."""
    extraction = RunDir.open(tmp_path / "se", identity={"t": 1}, kind="generate")
    log = AppendLog(next_part(extraction.records_dir))
    for i, skills in enumerate([["essay writing", "code debugging"], ["writing essays", "unit conversion"],
                                ["budget planning", "code debugging"]]):
        log.write({"id": i, "instruction": f"task {i}", "skills": skills})
    log.close()
    built = run_cli("skills", "build", str(extraction.path), "--min-count", "1")
    assert built.returncode == 0, built.stderr
    inventory = SkillInventory.load(extraction.path / "skills.yaml")
    assert inventory.names()[:2] == ["code debugging", "essay writing"] and len(inventory.skills) == 4
    assert "writing essays" in built.stdout  # the table shows which names were merged

    mix = RunDir.open(tmp_path / "mix", identity={"t": 2}, kind="generate",
                      config_yaml=yaml.safe_dump({"program": {"kind": "skillmix",
                                                              "skills": str(extraction.path / "skills.yaml")}}))
    log = AppendLog(next_part(mix.records_dir))
    for i, pair in enumerate([["code debugging", "essay writing"], ["unit conversion", "budget planning"]]):
        log.write({"id": i, "skills": pair, "messages": []})
    log.close()
    cov = run_cli("skills", "coverage", str(mix.path))
    assert cov.returncode == 0, cov.stderr
    assert "pairs covered 2/6 (33%)" in cov.stdout
