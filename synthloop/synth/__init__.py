"""Synthesis programs: DSPy modules that generate training data (one file per method)."""

from __future__ import annotations

from synthloop.synth.base import SynthProgram
from synthloop.synth.chat import ChatProgram, ChatSamples, ChatSamplesConfig
from synthloop.synth.self_instruct import SelfInstruct, SelfInstructConfig

#: programs by the `kind` their config names
PROGRAMS: dict[str, type[SynthProgram]] = {
    SelfInstruct.name: SelfInstruct,
    ChatSamples.name: ChatSamples,
}

__all__ = ["PROGRAMS", "ChatProgram", "ChatSamples", "ChatSamplesConfig", "SelfInstruct", "SelfInstructConfig",
           "SynthProgram", "build"]


def build(config) -> SynthProgram:
    """The program a `program:` config section describes."""
    return PROGRAMS[config.kind](config)
