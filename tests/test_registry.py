"""The model registry: the embedded default, the tiny test model, local paths, and offline hub ids."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from synthloop.engines import registry


def test_tiny_model_has_a_training_compatible_chat_template(tiny_model_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    rendered = tok.apply_chat_template(chat, tokenize=False)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello there<|im_end|>\n"
    out = tok.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == "hello there<|im_end|>"  # the loss covers the answer and its end token only
    text = 'Unicode ✓ and JSON {"a": [1, 2.5, null]}'
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text  # byte-level: any string


def test_prepare_is_done_once(tiny_model_path):
    marker = tiny_model_path / registry.MARKER
    stamp = marker.stat().st_mtime_ns
    assert registry.prepare("tiny-random-chat") == tiny_model_path
    assert marker.stat().st_mtime_ns == stamp
    assert registry.resolve("tiny-random-chat") == tiny_model_path


@pytest.mark.smollm2
def test_smollm2_is_converted_from_the_wheel(smollm2_path):
    config = json.loads((smollm2_path / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    tok = AutoTokenizer.from_pretrained(smollm2_path)
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    assert "{% generation %}" in tok.chat_template
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert rendered.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_local_directories_and_errors(tiny_model_path, tmp_path):
    assert registry.resolve(str(tiny_model_path)) == tiny_model_path
    (tmp_path / "empty").mkdir()
    with pytest.raises(registry.ModelNotFoundError, match="not a model checkpoint"):
        registry.resolve(str(tmp_path / "empty"))
    with pytest.raises(registry.ModelNotFoundError, match="neither a registered model"):
        registry.resolve("./does/not/exist")


def test_unreachable_hub_names_the_offline_default():
    with pytest.raises(registry.ModelNotFoundError) as err:
        registry.resolve("someorg/some-model-that-is-not-cached")
    message = str(err.value)
    assert "\n" not in message
    assert "cannot fetch 'someorg/some-model-that-is-not-cached'" in message
    assert "smollm2-135m-instruct" in message
