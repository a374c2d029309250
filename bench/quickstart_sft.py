"""Where an SFT step of the quickstart spends its time on this CPU, and which settings make it cheaper.

SmolLM2-135M-Instruct is trained for a few steps on quickstart-shaped data (arithmetic word problem ->
one short sentence) with each setting; the figure is seconds per optimizer step after the first (the
first carries one-time costs), plus the step's fixed costs (loading, building the trainer, saving), and the CPU
seconds it took (comparable between settings even when other jobs share the cores).

    .venv/bin/python bench/quickstart_sft.py                 # every setting, ~10 min on 2 cores
    .venv/bin/python bench/quickstart_sft.py --only full lora_bf16

Saves bench/results/quickstart_sft.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, save  # noqa: E402

from synthloop.loops.tasks.arithmetic import ArithmeticTasks  # noqa: E402
from synthloop.train import LoraSettings, SFTSettings, sft  # noqa: E402

TEMPLATE = "{prompt}\nAnswer in one short sentence."

SETTINGS: dict[str, dict] = {
    "full": {},                                                   # the quickstart until now: fp32, all weights
    "full_bf16": {"precision": "bf16"},
    "lora": {"lora": LoraSettings(r=16)},
    "lora_bf16": {"lora": LoraSettings(r=16), "precision": "bf16"},
    "full_padding_free": {"trl": {"padding_free": True}},
    "full_batch16": {"batch_size": 16},
}


def rows(n: int) -> list[dict]:
    """Quickstart-shaped SFT rows: the loop's prompt and a correct one-sentence answer."""
    tasks = ArithmeticTasks(seed=1, skills=["add", "sub", "mul"])
    rng = random.Random(0)
    out = []
    for task in tasks.rows():
        if len(out) == n:
            break
        name, obj = task["prompt"].split()[0], task["prompt"].split("?")[0].split()[-4]
        answer = rng.choice([f"{name} has {task['reference']} {obj} now.", f"The answer is {task['reference']}.",
                             f"{name} now has {task['reference']} {obj}."])
        out.append({"prompt": [{"role": "user", "content": TEMPLATE.format(prompt=task["prompt"])}],
                    "completion": [{"role": "assistant", "content": answer}]})
    return out


def measure(name: str, extra: dict, data: list[dict], steps: int, work: Path) -> dict:
    settings = SFTSettings(max_steps=steps, batch_size=8, learning_rate=2e-5, report_to=[],
                           **{k: v for k, v in extra.items()})
    started, cpu = time.time(), time.process_time()
    result = sft(model="smollm2-135m-instruct", data=data, out=work / name, config=settings, progress=False)
    wall, cpu = time.time() - started, time.process_time() - cpu
    log = [json.loads(line) for line in (work / name / "log.jsonl").read_text().splitlines()]
    runtime = next((r.get("train_runtime") for r in reversed(log) if "train_runtime" in r), None)
    per_step = (runtime / steps) if runtime else None
    row = {"setting": name, "steps": result.steps, "batch_size": settings.batch_size, "wall_s": round(wall, 1),
           "cpu_s": round(cpu, 1),  # CPU seconds of this process (all threads): comparable on a busy machine
           "train_runtime_s": round(runtime, 1) if runtime else None,
           "s_per_step": round(per_step, 2) if per_step else None,
           "fixed_s": round(wall - runtime, 1) if runtime else None,
           "first_loss": result.first_loss, "last_loss": result.last_loss, "peak_rss_gib": result.peak_rss_gib}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    data = rows(args.steps * 16)
    info = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="quickstart-sft-") as tmp:
        for name in args.only:
            results.append(measure(name, SETTINGS[name], data, args.steps, Path(tmp)))
    save("quickstart_sft", {"machine": info, "steps": args.steps, "results": results})


if __name__ == "__main__":
    main()
