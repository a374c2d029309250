"""The quiet console: library output (logging, warnings, C-level writes, child processes) goes to the run's log
file, our own lines and progress (with totals) stay on the console; --verbose leaves everything on the console."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, run_cli, tiny_generate_config, write_config

# Every way a library reaches the terminal, each with its own marker: a logger whose handler was made before the
# redirection (as vLLM configures its own at import), a logger without handlers (Python's last resort), warnings,
# a raw write to descriptor 2 (C code), a child process (vLLM's EngineCore) and a tqdm bar.
NOISY = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    configured = logging.getLogger("vllm.fake")
    configured.addHandler(logging.StreamHandler(sys.stdout))
    configured.propagate = False
    from synthloop.console import output, progress

    with output.library_output(Path(sys.argv[1])) as log:
        configured.warning("LIB-CONFIGURED-LOGGER")
        logging.getLogger("transformers.fake").warning("LIB-LASTRESORT-LOGGER")
        warnings.warn("LIB-WARNING", UserWarning)
        os.write(2, b"LIB-C-LEVEL\\n")
        child = "import sys; print('LIB-CHILD-OUT'); print('LIB-CHILD-ERR', file=sys.stderr)"
        subprocess.run([sys.executable, "-c", child])
        from tqdm import tqdm
        for _ in tqdm(range(3), desc="LIB-TQDM"):
            pass
        output.say("OUR-LINE")
        with progress.stage("round 1 · sample") as stage:
            with progress.bar("sample", 5, unit="tasks") as bar:
                bar.advance(5)
        output.say(f"round 1 · sample  {stage.summary()}")
        output.out.print("OUR-TABLE")
    print("AFTER", flush=True)
    print("AFTER-ERR", file=sys.stderr, flush=True)
""")
LIBRARY = ["LIB-CONFIGURED-LOGGER", "LIB-LASTRESORT-LOGGER", "LIB-WARNING", "LIB-C-LEVEL", "LIB-CHILD-OUT",
           "LIB-CHILD-ERR"]


def _run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    log = tmp_path / "run" / "log.txt"
    result = subprocess.run([sys.executable, "-c", NOISY, str(log)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result, log


def test_library_output_goes_to_the_log_file_and_ours_to_the_console(tmp_path):
    result, log = _run(tmp_path)
    console = result.stdout + result.stderr
    for marker in LIBRARY:
        assert marker not in console, marker
    assert "LIB-TQDM" not in console
    assert "OUR-LINE" in result.stderr and "OUR-TABLE" in result.stdout
    assert "round 1 · sample  5/5 tasks" in result.stderr  # a stage's line carries its total
    text = log.read_text()
    for marker in LIBRARY:
        assert marker in text, marker
    assert "OUR-LINE" in text  # our lines are mirrored into the file: it tells the whole story in order
    # afterwards the process's own stdout/stderr are back where they were
    assert "AFTER" in result.stdout and "AFTER-ERR" in result.stderr and "AFTER" not in text


def test_verbose_leaves_everything_on_the_console(tmp_path):
    result, log = _run(tmp_path, SYNTHLOOP_VERBOSE="1")
    console = result.stdout + result.stderr
    for marker in LIBRARY:
        assert marker in console, marker
    assert not log.exists()


@pytest.mark.vllm
def test_an_engine_that_cannot_start_is_one_line_naming_the_log(tmp_path):
    """vLLM refuses the config before any engine process starts (a max_model_len the model does not have): the user
    sees one line with vLLM's reason and where its output went; the traceback is in that file."""
    config = tiny_generate_config(tmp_path / "runs", num_records=2)
    config["engine"] = {"kind": "vllm", "model": "tiny-random-chat", "max_model_len": 1_000_000}
    result = run_cli("generate", str(write_config(tmp_path / "gen.yaml", config)))
    log = tmp_path / "runs" / "gen" / "log.txt"
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(error) == 1, result.stderr
    assert "vLLM could not start" in error[0] and "max_model_len" in error[0] and f"(engine output: {log})" in error[0]
    assert "Traceback" not in result.stderr and "Traceback" in log.read_text()
