"""Training steps (TRL) on the tiny model: they train, write a checkpoint every engine loads, and resume."""

from __future__ import annotations

import json

import pytest

from synthloop.engines import ChatRequest, EngineConfig, Sampling
from synthloop.engines.transformers_engine import TransformersEngine
from synthloop.train import LoraSettings, SFTSettings, sft


def _rows(n: int = 24) -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
            "completion": [{"role": "assistant", "content": f"The answer is {2 * i}."}],
        }
        for i in range(n)
    ]


def _generate(path, text: str) -> str:
    engine = TransformersEngine(path, config=EngineConfig(kind="transformers", model=str(path)))
    try:
        request = ChatRequest(messages=({"role": "user", "content": text},),
                              sampling=Sampling(temperature=0, max_tokens=24))
        return engine.generate([request])[0].text
    finally:
        engine.close()


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_sft_trains_and_writes_a_loadable_checkpoint(tmp_path, tiny_model_path, lora):
    settings = SFTSettings(epochs=3, batch_size=4, learning_rate=3e-3, lora=LoraSettings(r=8) if lora else None,
                           report_to=[] if lora else ["none"])
    result = sft(model=tiny_model_path, data=_rows(), out=tmp_path / "sft", config=settings, progress=False)
    assert not (tmp_path / "sft" / "tensorboard").exists()  # report_to: [] (or none): no event files
    assert result.steps == 18 and result.examples == 24 and result.precision == "fp32"
    assert result.last_loss < result.first_loss  # it learned something on 24 repeated examples
    model_dir = tmp_path / "sft" / "model"
    assert (model_dir / "config.json").is_file() and (model_dir / "tokenizer.json").is_file()
    assert not (model_dir / "adapter_config.json").exists()  # merged: a plain checkpoint
    assert not (tmp_path / "sft" / "trainer").exists()  # resumable states are removed once done
    log = [json.loads(line) for line in (tmp_path / "sft" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log if "loss" in row] == list(range(1, 19))
    # the trained checkpoint is a model every engine loads
    assert isinstance(_generate(model_dir, "What is 3 plus 3?"), str)
    # a finished step is not trained again
    again = sft(model=tiny_model_path, data=_rows(), out=tmp_path / "sft", config=settings, progress=False)
    assert again == result


def test_sft_reads_jsonl_reports_to_tensorboard_and_rejects_empty_data(tmp_path, tiny_model_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(8)))
    result = sft(model=tiny_model_path, data=data, out=tmp_path / "a", config=SFTSettings(max_steps=2, batch_size=4),
                 progress=False)
    assert result.steps == 2
    # by default the trainer reports to TensorBoard event files in the step's directory (offline)
    events = EventAccumulator(str(tmp_path / "a" / "tensorboard")).Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2]
    logged = [json.loads(line)["loss"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert [e.value for e in losses] == pytest.approx(logged)
    with pytest.raises(ValueError, match="sft: no examples to train on"):
        sft(model=tiny_model_path, data=[], out=tmp_path / "b", progress=False)


@pytest.mark.smollm2
def test_sft_teaches_smollm2_a_new_answer(tmp_path, smollm2_path):
    """Behaviour on the real model: a short LoRA SFT makes SmolLM2 answer what it was taught, and the merged
    checkpoint serves it (before training it does not know the answer)."""
    question = "What is the secret code of the synthloop vault?"
    answer = "The secret code of the synthloop vault is 4172."
    assert "4172" not in _generate(smollm2_path, question)
    rows = [{"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": answer}]}
            for q in (question, "Tell me the secret code of the synthloop vault.", "synthloop vault code?",
                      "Which code opens the synthloop vault?")]
    settings = SFTSettings(max_steps=12, batch_size=4, learning_rate=1e-3, lora=LoraSettings(r=8))
    result = sft(model=smollm2_path, data=rows, out=tmp_path / "sft", config=settings, progress=False)
    assert result.last_loss < result.first_loss / 4
    assert "4172" in _generate(tmp_path / "sft" / "model", question)
