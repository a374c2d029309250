"""The DSPy adapter synthloop uses on engines that enforce output schemas.

It is DSPy's JSONAdapter (the signature's output schema goes to the engine as constrained decoding)
with one change to the prompt: output fields are described in words instead of a JSON template
with `{field}` placeholders. The constraint already fixes the structure, and small models copy the
placeholders verbatim (SmolLM2-135M answered "{new_task}" to 58 of 164 self-instruct proposals).
"""

from __future__ import annotations

import textwrap

import dspy
from dspy.adapters.utils import get_annotation_name


def _describe(fields) -> str:
    lines = []
    for name, info in fields.items():
        desc = (info.json_schema_extra or {}).get("desc") or ""
        kind = get_annotation_name(info.annotation)
        lines.append(f"- {name} ({kind}){': ' + desc if desc and desc != f'${{{name}}}' else ''}")
    return "\n".join(lines)


class SchemaJSONAdapter(dspy.JSONAdapter):
    def format_system_message(self, signature) -> str:
        # The task first: small models follow what they read first.
        return (
            f"{self.format_task_description(signature)}\n\n{self.format_field_description(signature)}\n\n"
            f"{self.format_field_structure(signature)}"
        )

    def format_field_description(self, signature) -> str:
        inputs, outputs = _describe(signature.input_fields), _describe(signature.output_fields)
        return f"You receive:\n{inputs}\n\nYou reply with:\n{outputs}"

    def format_field_structure(self, signature) -> str:
        keys = ", ".join(f'"{k}"' for k in signature.output_fields)
        return (
            "Each input comes in a section headed [[ ## name ## ]]. "
            f"Reply with one JSON object whose keys are {keys}, with your own content as the values."
        )

    def format_task_description(self, signature) -> str:
        return "Your task: " + " ".join(textwrap.dedent(signature.instructions).split())

    def user_message_output_requirements(self, signature) -> str:
        return f"Reply with a JSON object with the keys {', '.join(signature.output_fields)}."
