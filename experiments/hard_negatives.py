"""Do generated hard negatives help a retriever? all-MiniLM-L6-v2 fine-tuned briefly on PubMedQA three ways.

Data (../shared/data/pubmedqa/ori_pqal.json, as its README describes): corpus = the 1,000 abstracts
(" ".join(CONTEXTS)) keyed by PubMed id; queries = the 1,000 QUESTIONs; qrels = each query's own abstract.
Queries are split at random (seeded) into train and test; the test queries are searched against the whole
corpus.

Variants, each trained from the same untuned checkpoint with the same steps, batch size, learning rate and
seed, with MultipleNegativesRankingLoss (sentence-transformers, CPU), on the same training queries:
  (i)   in-batch negatives only:         (anchor, positive)
  (ii)  BM25-mined negatives:            (anchor, positive, negative_1), mined by the hard_negatives program
                                         from the training abstracts (positive excluded, top ranks skipped)
  (iii) SmolLM2-generated negatives:     (anchor, positive, negative_1), written from the query alone by the
                                         hard_negatives program on the vLLM engine (corpus-free)
Both (ii) and (iii) pass the program's default embedding false-negative guard; only training queries that got
a negative in both are used, for all three variants.

    flock /tmp/synthloop-heavy.lock python experiments/hard_negatives.py          # ~15 min on 2 cores

Prints a table and writes bench/results/hard_negatives.json (nDCG@10, Recall@100, MRR@10, Recall@10 per
variant, deltas against the untuned model, generation counts and times, examples). Generation runs live in
runs/bench-hard-negatives/ and resume from their request caches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pubmedqa" / "ori_pqal.json"


def load_pubmedqa(path: Path = DATA) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    raw = json.loads(path.read_text())
    corpus = {pid: " ".join(row["CONTEXTS"]) for pid, row in raw.items()}
    queries = {pid: row["QUESTION"] for pid, row in raw.items()}
    qrels = {pid: {pid} for pid in raw}
    return corpus, queries, qrels


def split(ids: list[str], test_size: int, seed: int) -> tuple[list[str], list[str]]:
    ids = sorted(ids)
    random.Random(seed).shuffle(ids)
    return ids[test_size:], ids[:test_size]


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def run_program(engine, train_file: Path, run: Path, sources: list[str], args) -> dict:
    from synthloop.engines.types import Sampling
    from synthloop.synth.generate import generate
    from synthloop.synth.hard_negatives import HardNegatives

    program = HardNegatives(inputs={"path": str(train_file)}, sources=sources, num_negatives=1,
                            generated_per_query=args.generated_per_query, mined_per_query=5, skip_top=args.skip_top)
    started = time.time()
    summary = generate(program, engine=engine, run=run, sampling=Sampling(temperature=0.8, max_tokens=args.max_tokens),
                       seed=args.seed, concurrency=64, json_max_chars=args.max_chars)
    records = list(summary.run.iter_records())
    dropped: dict[str, int] = {}
    for r in records + [f["record"] for f in summary.run.iter_filtered()]:
        for d in r["dropped"]:
            kind = d["reason"].split(" (")[0]
            dropped[kind] = dropped.get(kind, 0) + 1
    return {
        "records": {r["positive_id"]: r for r in records},
        "stats": {"kept": summary.kept, "filtered": summary.filtered, "failed": summary.failed,
                  "failure_reasons": summary.failure_reasons, "seconds": round(time.time() - started, 1),
                  "output_tokens": summary.output_tokens, "cache_hits": summary.cache_hits,
                  "guard_dropped": dropped},
    }


def generate_negatives(train_file: Path, args) -> tuple[dict, dict, dict]:
    """(ii) BM25 and (iii) generated negatives, through the hard_negatives program; vLLM is closed after."""
    from synthloop.engines import EngineConfig, from_config

    started = time.time()
    engine = from_config(EngineConfig(kind="vllm", model="smollm2-135m-instruct", dtype=args.dtype))
    engine_info = {**engine.describe(), "start_seconds": round(time.time() - started, 1)}
    work = ROOT / "runs" / "bench-hard-negatives"
    try:
        bm25 = run_program(engine, train_file, work / f"bm25-{train_file.stem}", ["bm25"], args)
        gen = run_program(engine, train_file, work / f"generated-{train_file.stem}", ["generated"], args)
    finally:
        engine.close()
    return bm25, gen, engine_info


def train(rows: dict[str, list[str]], args, label: str):
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from synthloop.embeddings import embedder_path

    model = SentenceTransformer(embedder_path(), device="cpu")
    model.max_seq_length = args.max_seq_length
    with tempfile.TemporaryDirectory() as out:
        targs = SentenceTransformerTrainingArguments(
            output_dir=out, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr, warmup_steps=0.1, seed=args.seed, data_seed=args.seed,
            batch_sampler="no_duplicates", report_to="none", save_strategy="no", logging_steps=max(1, args.steps // 5),
            use_cpu=True, dataloader_pin_memory=False, disable_tqdm=True)
        trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=Dataset.from_dict(rows),
                                            loss=MultipleNegativesRankingLoss(model))
        started = time.time()
        result = trainer.train()
    seconds = time.time() - started
    print(f"  trained {label}: {args.steps} steps in {seconds:.0f} s, loss {result.training_loss:.4f}")
    return model, {"train_seconds": round(seconds, 1), "train_loss": round(result.training_loss, 4)}


def evaluate(model, queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, set[str]]) -> dict:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    evaluator = InformationRetrievalEvaluator(
        queries, corpus, qrels, ndcg_at_k=[10], precision_recall_at_k=[10, 100], mrr_at_k=[10],
        accuracy_at_k=[1], map_at_k=[100], batch_size=32, write_csv=False, show_progress_bar=False)
    started = time.time()
    scores = evaluator(model)
    names = {"ndcg@10": "ndcg@10", "recall@100": "recall@100", "mrr@10": "mrr@10", "recall@10": "recall@10",
             "accuracy@1": "accuracy@1"}
    out = {}
    for key, value in scores.items():
        for suffix, name in names.items():
            if key.endswith(f"cosine_{suffix}"):
                out[name] = round(float(value), 4)
    out["eval_seconds"] = round(time.time() - started, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-queries", type=int, default=500, help="queries held out for evaluation")
    parser.add_argument("--train-queries", type=int, default=320,
                        help="training queries used (of the 1,000 - test); 20 steps x 16 = 320 rows, about one epoch")
    parser.add_argument("--steps", type=int, default=20, help="training steps, the same for every variant")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--max-seq-length", type=int, default=128, help="tokens per text (train and eval)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generated-per-query", type=int, default=2, help="passages SmolLM2 writes per query")
    parser.add_argument("--skip-top", type=int, default=3, help="BM25 ranks skipped after the positive")
    parser.add_argument("--max-tokens", type=int, default=320, help="SmolLM2 tokens per call")
    parser.add_argument("--max-chars", type=int, default=700, help="longest generated passage (characters)")
    parser.add_argument("--dtype", default="bfloat16", help="vLLM dtype for generation")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hard_negatives.json")
    args = parser.parse_args()

    import torch

    started = time.time()
    corpus, queries, qrels = load_pubmedqa()
    train_ids, test_ids = split(list(queries), args.test_queries, args.seed)
    train_ids = train_ids[:args.train_queries]
    work = ROOT / "runs" / "bench-hard-negatives"
    rows = ({"query": queries[i], "passage": corpus[i], "positive_id": i} for i in train_ids)
    train_file = write_jsonl(work / f"train-n{len(train_ids)}-s{args.seed}.jsonl", rows)
    print(f"PubMedQA: {len(corpus)} abstracts, {len(train_ids)} train / {len(test_ids)} test queries")

    bm25, gen, engine_info = generate_negatives(train_file, args)
    common = [i for i in train_ids if i in bm25["records"] and i in gen["records"]]
    print(f"negatives: bm25 {len(bm25['records'])}, generated {len(gen['records'])}, both {len(common)} queries")

    anchors = [queries[i] for i in common]
    positives = [corpus[i] for i in common]
    variants = {
        "in_batch": {"anchor": anchors, "positive": positives},
        "bm25": {"anchor": anchors, "positive": positives,
                 "negative_1": [bm25["records"][i]["negative_1"] for i in common]},
        "generated": {"anchor": anchors, "positive": positives,
                      "negative_1": [gen["records"][i]["negative_1"] for i in common]},
    }
    test_queries = {i: queries[i] for i in test_ids}
    test_qrels = {i: qrels[i] for i in test_ids}

    from sentence_transformers import SentenceTransformer

    from synthloop.embeddings import embedder_path

    results: dict[str, dict] = {}
    base = SentenceTransformer(embedder_path(), device="cpu")
    base.max_seq_length = args.max_seq_length
    results["untuned"] = evaluate(base, test_queries, corpus, test_qrels)
    print(f"  untuned: {results['untuned']}")
    for name, rows in variants.items():
        model, info = train(rows, args, name)
        results[name] = {**evaluate(model, test_queries, corpus, test_qrels), **info, "train_rows": len(anchors)}
        print(f"  {name}: {results[name]}")
    for name in variants:
        for metric in ("ndcg@10", "recall@100"):
            results[name][f"delta_{metric}"] = round(results[name][metric] - results["untuned"][metric], 4)
            results[name][f"ratio_{metric}"] = round(results[name][metric] / results["untuned"][metric], 4)

    example = common[0]
    report = {
        "benchmark": "hard_negatives",
        "what": "all-MiniLM-L6-v2 fine-tuned with MultipleNegativesRankingLoss on PubMedQA train queries; "
                "nDCG@10 / Recall@100 of the test queries against all 1,000 abstracts (one relevant each)",
        "data": {"corpus": len(corpus), "train_queries": len(train_ids), "test_queries": len(test_ids),
                 "train_rows_used": len(common), "split_seed": args.seed},
        "training": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup": 0.1,
                     "max_seq_length": args.max_seq_length, "seed": args.seed, "batch_sampler": "no_duplicates",
                     "examples_seen": args.steps * args.batch_size},
        "results": results,
        "generation": {"engine": engine_info, "bm25": bm25["stats"], "generated": gen["stats"],
                       "generated_per_query": args.generated_per_query, "skip_top": args.skip_top,
                       "max_tokens": args.max_tokens, "max_chars": args.max_chars,
                       "guard": "embedding (relative_margin 0.05, max_positive_similarity 0.9)"},
        "example": {"query": queries[example], "positive": corpus[example][:400],
                    "bm25_negative": bm25["records"][example]["negative_1"][:400],
                    "generated_negative": gen["records"][example]["negative_1"][:400]},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "note": "2-core machine shared with other engineers' light jobs; heavy work under the lock"},
        "seconds_total": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'variant':<12}{'nDCG@10':>10}{'R@100':>10}{'MRR@10':>10}{'R@10':>10}{'dNDCG':>9}")
    for name, r in results.items():
        print(f"{name:<12}{r['ndcg@10']:>10.4f}{r['recall@100']:>10.4f}{r['mrr@10']:>10.4f}{r['recall@10']:>10.4f}"
              f"{r.get('delta_ndcg@10', 0):>+9.4f}")
    print(f"saved {args.out} ({report['seconds_total']:.0f} s)")


if __name__ == "__main__":  # vLLM spawns processes that re-import __main__
    main()
