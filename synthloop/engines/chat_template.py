"""The ChatML template synthloop writes into the checkpoints it prepares.

It renders exactly what SmolLM2-135M-Instruct's own template renders (same default system prompt),
and adds `{% generation %}` markers around assistant turns, which TRL needs for
`assistant_only_loss=True` (training on the answers, not on the prompts).
"""

from __future__ import annotations

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml_template(default_system: str | None = DEFAULT_SYSTEM) -> str:
    system = (
        "{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}"
        "{% endif %}"
        if default_system
        else ""
    )
    return (
        "{% for message in messages %}" + system + "{% if message['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant\\n' }}"
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
        "{{ '\\n' }}"
        "{% else %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
