"""Configs: YAML + --set overrides, and bad input reported in one line naming file, key and expectation."""

from __future__ import annotations

import pytest
from helpers import run_cli, tiny_generate_config, write_config

from synthloop.configs import ConfigError, load_config
from synthloop.synth.generate_config import GenerateConfig


def _cfg(tmp_path, **overrides):
    return write_config(tmp_path / "gen.yaml", tiny_generate_config(tmp_path / "runs", **overrides))


def test_overrides_are_typed_and_nested(tmp_path):
    cfg = load_config(
        GenerateConfig,
        _cfg(tmp_path),
        ["engine.max_model_len=1024", "sampling.temperature=0.2", "program.num_examples=3"],
    )
    assert cfg.engine.max_model_len == 1024 and cfg.sampling.temperature == 0.2 and cfg.program.num_examples == 3


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("engine.max_model_len=abc", "gen.yaml: engine.max_model_len: input should be a valid integer"),
        ("engine.temperature=0.5", "gen.yaml: engine.temperature: unknown key; expected one of: api_key_env, base_url"),
        ("sampling.temprature=0.5", "gen.yaml: sampling.temprature: unknown key; did you mean 'temperature'?"),
        ("sampling.temperature=7", "gen.yaml: sampling.temperature: input should be less than or equal to 2"),
        ("program.kind=nope",
         "gen.yaml: program: input tag 'nope' found using 'kind' does not match any of the expected tags"),
        ("engine.kind=tpu", "gen.yaml: engine.kind: input should be 'auto', 'vllm', 'transformers' or 'openai'"),
        ("novalue", "--set 'novalue': expected key=value"),
    ],
)
def test_bad_values_give_one_line(tmp_path, override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(GenerateConfig, _cfg(tmp_path), [override])
    message = str(err.value)
    assert "\n" not in message
    assert expected in message, message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file"):
        load_config(GenerateConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("program:\n  kind: self_instruct\n   engine: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(GenerateConfig, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(GenerateConfig, listy)


def test_missing_required_key(tmp_path):
    data = tiny_generate_config(tmp_path / "runs")
    del data["program"]
    with pytest.raises(ConfigError, match="gen.yaml: program: required key is missing"):
        load_config(GenerateConfig, write_config(tmp_path / "gen.yaml", data))


def test_cli_prints_one_line_and_exits_2(tmp_path):
    """The real command: one line on stderr, exit code 2, no traceback."""
    result = run_cli("generate", str(_cfg(tmp_path)), "--set", "sampling.max_tokens=lots")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "gen.yaml: sampling.max_tokens: input should be a valid integer" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout

    result = run_cli("generate", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2 and "absent.yaml: no such config file" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_hash_ignores_runtime_fields(tmp_path):
    a = load_config(GenerateConfig, _cfg(tmp_path))
    b = load_config(GenerateConfig, _cfg(tmp_path), ["concurrency=3", "num_records=999", "engine.batch_size=2"])
    c = load_config(GenerateConfig, _cfg(tmp_path), ["sampling.temperature=0.1"])
    assert a.output_hash() == b.output_hash() != c.output_hash()


def test_an_unknown_option_is_a_usage_error_not_an_internal_one():
    """Typer vendors click: its usage errors must still end as click's message and exit 2."""
    result = run_cli("loop", "status", "runs/x", "--set", "rounds=2")
    assert result.returncode == 2, result.stderr
    assert "No such option: --set" in result.stderr and "internal error" not in result.stderr
