"""The README's runnable blocks (a fenced block right after `<!-- runnable -->`) run as printed, on the tiny model:
every `synthloop` command line through the real CLI (`synthloop.cli.main`, in this interpreter), in order (a later
line reads what an earlier one wrote), every Python block with `exec`. Only what makes them small and local
changes: the engine (the tiny random model through transformers instead of SmolLM2 on vLLM), record and task
counts, and run directories under the test's temp dir."""

from __future__ import annotations

import re
import shlex

import pytest
from cli_driver import run_main
from helpers import ROOT

BLOCK = re.compile(r"<!-- runnable -->\s*\n```(bash|python)\n(.*?)```", re.S)
TINY = ["--set", "engine.kind=transformers", "--set", "engine.model=tiny-random-chat"]
SMALL = {
    "generate": ["--set", "num_records=3", "--set", "program.min_words=1", "--set", "program.num_examples=2",
                 "--set", "sampling.max_tokens=48", "--set", "show_examples=0"],
    "loop": ["--set", "rounds=1", "--set", "tasks.per_round=4", "--set", "tasks.eval_count=4",
             "--set", "sampling.n=2", "--set", "sampling.max_tokens=16", "--set", "eval.max_tokens=16",
             "--set", "train.sft.max_steps=2", "--set", "train.sft.batch_size=2"],
}


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def local(text: str, tmp) -> str:
    """Run and export directories under the temp dir (the README writes them under the project)."""
    return re.sub(r"(?<![\w./])(runs|exports)/", lambda m: f"{tmp}/{m.group(1)}/", text)


def commands() -> list[str]:
    lines = []
    for kind, body in blocks():
        if kind == "bash":
            lines += [line.split("  #")[0].strip() for line in body.splitlines()]
    return [line for line in lines if line.startswith("synthloop ")]


def test_the_readme_has_runnable_blocks():
    kinds = [kind for kind, _ in blocks()]
    assert "bash" in kinds and "python" in kinds
    # every shell command the README shows in a bash block is in a runnable one
    every = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    shown = [line.split("  #")[0].strip() for body in every for line in body.splitlines()]
    assert set(commands()) == {line for line in shown if line.startswith("synthloop ")}


def test_the_shell_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    ran = []
    for line in commands():
        args = shlex.split(local(line, tmp_path))[1:]
        runs_a_config = args[0] in ("generate", "filter") or (args[0] == "loop" and args[1] != "status")
        if runs_a_config:
            args += ["--set", f"output_dir={tmp_path}/runs"]
        if runs_a_config and args[0] in ("generate", "loop"):
            args += TINY + SMALL.get(args[0], [])
        if runs_a_config and args[0] == "loop":
            args += ["--set", f"summary_json={tmp_path}/summary.json"]
        result = run_main(args)
        assert result.code == 0, f"{line}\n{result.out[-2000:]}\n{result.err[-3000:]}"
        ran.append(args[0])
    assert {"generate", "filter", "runs", "report", "loop", "schedule"} <= set(ran)
    assert (tmp_path / "exports" / "self_instruct").is_dir()
    assert (tmp_path / "runs" / "quickstart" / "summary.json").is_file()


def test_the_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for kind, body in blocks():
        if kind != "python":
            continue
        code = local(body, tmp_path)
        code = code.replace('sl.engines.load("vllm", model="smollm2-135m-instruct")',
                            'sl.engines.load("transformers", model="tiny-random-chat")')
        code = re.sub(r"num_records=\d+", "num_records=3", code)
        code = code.replace("SelfInstruct(seed_tasks=", "SelfInstruct(min_words=1, num_examples=2, seed_tasks=")
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
        if "dataset" in namespace:
            assert len(namespace["dataset"]) >= 1


pytestmark = pytest.mark.filterwarnings("ignore")
