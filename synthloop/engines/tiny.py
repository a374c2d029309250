"""A tiny random chat model, built offline in seconds, for tests of every code path.

A 2-layer Llama (the architecture of SmolLM2, so vLLM, transformers, TRL and peft treat both alike)
with a byte-level BPE tokenizer trained here on a small built-in corpus and the ChatML template.
Byte-level means any string can be produced, which constrained JSON decoding needs. It says
nothing about quality: its outputs are noise, shaped by whatever constraint is applied.
"""

from __future__ import annotations

from pathlib import Path

from synthloop.engines.chat_template import chatml_template

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = """\
You are a helpful assistant. Answer the question in one sentence.
The capital of France is Paris. Water boils at 100 degrees Celsius at sea level.
Write a short poem about the sea. Give three reasons why exercise is good for you.
Instruction: Summarize the following paragraph. Input: The quick brown fox jumps over the lazy dog.
{"instruction": "Classify the sentiment of the review.", "response": "positive"}
{"answer": "42", "reasoning": "6 times 7 is 42", "confidence": 0.9, "valid": true, "items": [1, 2, 3]}
Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.
How many clips did Natalia sell altogether in April and May? Answer: 72. #### 72
0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 -7 1/2 50% $20 +-*/=<>()[]{}:;,.!?'"_-#@&|\\~`^
Human: What is machine learning? Assistant: Machine learning is a field of computer science.
"""


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = chatml_template(default_system=None)
    return fast


def build_tiny_chat_model(out: str | Path, *, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out)
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=hidden_size // 2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
