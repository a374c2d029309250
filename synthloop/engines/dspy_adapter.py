"""The DSPy adapter synthloop uses on engines that enforce output schemas.

It is DSPy's JSONAdapter (the signature's output schema goes to the engine as constrained decoding)
with one change to the prompt: output fields are described in words instead of a JSON template
with `{field}` placeholders. The constraint already fixes the structure, and small models copy the
placeholders verbatim (SmolLM2-135M answered "{new_task}" to 58 of 164 self-instruct proposals).
"""

from __future__ import annotations

import textwrap
import weakref

import dspy
from dspy.adapters.utils import format_field_value, get_annotation_name


def _describe(fields) -> str:
    lines = []
    for name, info in fields.items():
        desc = (info.json_schema_extra or {}).get("desc") or ""
        kind = get_annotation_name(info.annotation)
        lines.append(f"- {name} ({kind}){': ' + desc if desc and desc != f'${{{name}}}' else ''}")
    return "\n".join(lines)


def _value(info, value) -> str:
    return value if isinstance(value, str) else format_field_value(field_info=info, value=value)


class SchemaJSONAdapter(dspy.JSONAdapter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # DSPy builds a pydantic model and its JSON schema for every call (~1 ms of CPU each, measured: half
        # the client's time against a fast server); the schema depends only on the signature class.
        self._formats: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._system: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # it depends on the signature only

    def _prepare_response_format(self, lm, lm_kwargs, signature):
        cached = self._formats.get(signature)
        if cached is not None and "response_format" in lm.supported_params and lm.supports_response_schema:
            lm_kwargs["response_format"] = cached
            return
        super()._prepare_response_format(lm, lm_kwargs, signature)
        fmt = lm_kwargs.get("response_format")
        if isinstance(fmt, type):
            self._formats[signature] = fmt

    # DSPy's format_field_value builds a pydantic TypeAdapter per value (~0.2 ms of CPU); a string formats as
    # itself, so the two methods below give DSPy's exact text with that shortcut.
    def format_user_message_content(self, signature, inputs, prefix="", suffix="", main_request=False) -> str:
        messages = [prefix]
        for name, info in signature.input_fields.items():
            if name in inputs:
                messages.append(f"[[ ## {name} ## ]]\n{_value(info, inputs.get(name))}")
        if main_request:
            requirements = self.user_message_output_requirements(signature)
            if requirements is not None:
                messages.append(requirements)
        messages.append(suffix)
        return "\n\n".join(messages).strip()

    def format_field_with_value(self, fields_with_values, role: str = "user") -> str:
        if role != "user":
            return super().format_field_with_value(fields_with_values, role)
        out = [f"[[ ## {field.name} ## ]]\n{_value(field.info, value)}" for field, value in fields_with_values.items()]
        return "\n\n".join(out).strip()

    def format_system_message(self, signature) -> str:
        cached = self._system.get(signature)
        if cached is None:
            cached = self._system[signature] = self._system_message(signature)
        return cached

    def _system_message(self, signature) -> str:
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
