"""Hard negatives: mining skips the positive and the top ranks, the guard drops a planted positive, and runs
write sentence-transformers rows with provenance (tiny model, constrained decoding)."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from synthloop.configs import ConfigError, load_config
from synthloop.embeddings import load_embedder
from synthloop.engines.types import Sampling
from synthloop.judges.false_negatives import EmbeddingGuard
from synthloop.synth.generate import generate
from synthloop.synth.generate_config import GenerateConfig
from synthloop.synth.hard_negatives import HardNegatives, HardNegativesConfig, training_dataset
from synthloop.synth.negative_mining import BM25Miner, Corpus, EmbeddingMiner, mine

QUERY = "How does vitamin D deficiency affect bone density in older adults?"
POSITIVE = ("Vitamin D deficiency affects bone density in older adults: in adults over 65, vitamin D deficiency "
            "was associated with reduced bone density and more fractures, and vitamin D supplements raised bone "
            "density within a year.")
PASSAGES = [
    POSITIVE,
    "Vitamin D deficiency in older adults: bone density fell in those with low vitamin D levels.",
    "Bone density and vitamin D were measured in adults; deficiency was common in older patients.",
    "Vitamin D supplementation in children with asthma reduced the number of attacks.",
    "Older adults with low bone density benefit from resistance training and calcium.",
    "Vitamin D synthesis in the skin depends on sunlight exposure and latitude.",
    "Deficiency of iron causes anemia and fatigue in adults.",
    "Bone fractures in athletes heal faster with early mobilisation.",
    "The density of traffic in older city centres affects air quality.",
]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


@pytest.mark.parametrize("kind", ["bm25", "embedding"])
def test_mining_skips_the_positive_and_the_top_ranks(kind, embedder):
    ids = [f"d{i}" for i in range(len(PASSAGES))]
    # a copy of the positive under another id is the positive too (duplicates are common in real corpora)
    corpus = Corpus([*PASSAGES, POSITIVE + "  "], [*ids, "copy"])
    miner = BM25Miner(corpus) if kind == "bm25" else EmbeddingMiner(corpus, embedder)
    full = [i for i, _ in miner.search(QUERY, len(corpus))]
    assert {0, len(PASSAGES)} & set(full[:3])  # the positive ranks near the top: excluding it matters
    non_positive = [i for i in full if i not in (0, len(PASSAGES))]
    got = mine(miner, QUERY, positive=POSITIVE, positive_id="d0", skip_top=2, count=3)
    assert [c.text for c in got] == [PASSAGES[i] for i in non_positive[2:5]]
    assert [c.rank for c in got] == [3, 4, 5] and all(c.source == kind for c in got)
    assert [c.doc_id for c in got] == [ids[i] for i in non_positive[2:5]]
    assert POSITIVE not in [c.text.strip() for c in got]
    scores = [c.score for c in got]
    assert scores == sorted(scores, reverse=True)


def test_embedding_guard_drops_a_planted_positive(embedder):
    guard = EmbeddingGuard(embedder, relative_margin=0.05, max_positive_similarity=0.9)
    planted = [
        "Low vitamin D in people over 65 went with lower bone mineral density and more fractures, and taking "
        "vitamin D increased bone density within a year.",  # a paraphrase of the positive: it answers the query
        "Vitamin D deficiency in older adults lowers bone density.",  # a short answer
    ]
    negatives = [PASSAGES[3], PASSAGES[6], PASSAGES[8]]  # related terms, but they do not answer it
    reasons, scores = guard.check(QUERY, POSITIVE, planted + negatives)
    assert all(r is not None for r in reasons[:2]), reasons
    assert reasons[2:] == [None, None, None], reasons
    assert all(set(s) == {"sim_query", "sim_positive", "sim_query_positive"} for s in scores)


def _rows(tmp_path, n=6):
    from conftest import SHARED

    raw = json.loads((SHARED / "pubmedqa" / "ori_pqal.json").read_text())
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for pubid, row in list(raw.items())[:n]:
            f.write(json.dumps({"question": row["QUESTION"], "text": " ".join(row["CONTEXTS"]), "pubid": pubid}) + "\n")
    return path


def test_run_writes_sentence_transformers_rows_with_provenance(tiny_engine, tmp_path):
    inputs = {"path": str(_rows(tmp_path)), "columns": {"query": "question", "passage": "text", "positive_id": "pubid"}}
    program = HardNegatives(inputs=inputs, sources=["generated", "bm25", "embedding"], num_negatives=3,
                            generated_per_query=2, mined_per_query=2, skip_top=1, guard="embedding")
    summary = generate(program, engine=tiny_engine, run=tmp_path / "run", sampling=Sampling(max_tokens=48,
                       temperature=1.0), seed=1, json_max_chars=40, progress=False)
    records = list(summary.run.iter_records())
    assert summary.failed == 0 and len(records) + summary.filtered == 6
    assert records, "every row lost its negatives"
    for r in records:
        assert isinstance(r["anchor"], str) and r["anchor"] and r["query_generated"] is False
        assert all(isinstance(r[f"negative_{i}"], str) and r[f"negative_{i}"] for i in (1, 2, 3))
        assert r["positive_id"] and len(r["negatives_meta"]) == 3
        sources = [m["source"] for m in r["negatives_meta"]]
        assert set(sources) <= {"generated", "bm25", "embedding"}
        for m in r["negatives_meta"]:
            assert m["source"] == "generated" or (m["rank"] >= 2 and m["doc_id"] != r["positive_id"])
            assert m["sim_query"] <= 0.95 * m["sim_query_positive"] + 1e-6 and m["sim_positive"] < 0.9
        assert r["positive"] not in [r[f"negative_{i}"] for i in (1, 2, 3)]
        prov = r["provenance"]
        assert prov["program"] == "hard_negatives" and prov["model"] == "tiny-random-chat"
        assert prov["engine"] == "transformers" and isinstance(prov["seed"], int)
    for row in summary.run.iter_filtered():
        assert row["reason"].startswith("only ")
    # the model wrote two different corpus-free passages per query (distinct seeds)
    generated = [d["text"] for r in records for d in r["dropped"] if d["source"] == "generated"]
    generated += [r[f"negative_{i}"] for r in records for i, m in enumerate(r["negatives_meta"], 1)
                  if m["source"] == "generated"]
    assert len(set(generated)) > len(records)
    dataset = training_dataset(summary.run.path)
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]
    assert len(dataset) == len(records)


def test_run_guard_drops_a_planted_positive_from_the_corpus(tiny_engine, tmp_path):
    """A corpus that holds a paraphrase of the positive under another id: BM25 ranks it near the top, the
    guard drops it, and a real negative takes its place."""
    paraphrase = ("Low vitamin D in people over 65 went with lower bone mineral density and more fractures, and "
                  "taking vitamin D increased bone density within a year.")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "passage": p}) + "\n"
                              for i, p in enumerate([*PASSAGES, paraphrase])))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": QUERY, "passage": POSITIVE, "positive_id": "d0"}) + "\n")
    program = HardNegatives(inputs={"path": str(pairs)}, corpus={"path": str(corpus)}, sources=["bm25"],
                            num_negatives=2, mined_per_query=8, skip_top=0, guard="embedding")
    summary = generate(program, engine=tiny_engine, run=tmp_path / "run", progress=False)
    (record,) = list(summary.run.iter_records())
    dropped = {d["text"]: d["reason"] for d in record["dropped"]}
    assert paraphrase in dropped
    assert "likely answers it" in dropped[paraphrase] or "near-duplicate" in dropped[paraphrase]
    assert paraphrase not in (record["negative_1"], record["negative_2"])
    assert record["negatives_meta"][0]["rank"] >= 1
    assert summary.cache_hits == 0 and summary.output_tokens == 0  # mining alone makes no model calls


def test_written_queries_and_the_llm_guard_run_through_constrained_decoding(tiny_engine, tmp_path):
    inputs = {"path": str(_rows(tmp_path, 4)), "columns": {"passage": "text"}}  # no query: (a) passage -> query
    program = HardNegatives(inputs=inputs, sources=["generated"], generated_per_query=2, guard="llm")
    summary = generate(program, engine=tiny_engine, run=tmp_path / "run", sampling=Sampling(max_tokens=48,
                       temperature=1.0), json_max_chars=40, progress=False)
    assert summary.failed == 0 and summary.kept + summary.filtered == 4
    rows = [*summary.run.iter_records(), *(f["record"] for f in summary.run.iter_filtered())]
    judged = [d for r in rows for d in r["dropped"] if d["reason"].startswith("LLM judge")]
    kept = [r for r in rows if r["negative_1"] is not None]
    assert len(judged) + len(kept) >= 4  # every candidate got a verdict: kept or dropped by the judge
    assert all(r["query_generated"] is True and r["anchor"] for r in rows)


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="mined_per_query is 0"):
        HardNegativesConfig(inputs={"path": "x.jsonl"}, sources=["bm25"], mined_per_query=0)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("program:\n  kind: hard_negatives\n  inputs: {path: x.jsonl}\n  sources: [bm26]\n")
    with pytest.raises(ConfigError, match="program.hard_negatives.sources.0"):
        load_config(GenerateConfig, cfg)


def test_cli_runs_the_shipped_config(tmp_path):
    out = run_cli("generate", "configs/generate/hard_negatives.yaml", "--set", f"output_dir={tmp_path}",
                  "--set", "engine.kind=transformers", "--set", "engine.model=tiny-random-chat",
                  "--set", "num_records=2", "--set", "program.inputs.limit=3", "--set", "sampling.max_tokens=48",
                  "--set", "engine.json_string_max_chars=40", "--set", "program.sources=[bm25]")
    assert out.returncode == 0, out.stdout + out.stderr
    records = [json.loads(line) for p in (tmp_path / "hard_negatives" / "records").glob("*.jsonl")
               for line in p.read_text().splitlines()]
    assert len(records) == 2 and all(r["negative_2"] for r in records)
