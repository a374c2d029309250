"""Synthesis programs: DSPy modules that generate training data (one file per method)."""

from __future__ import annotations

from synthloop.synth.base import SynthProgram
from synthloop.synth.chat import ChatProgram, ChatSamples, ChatSamplesConfig
from synthloop.synth.hard_negatives import HardNegatives, HardNegativesConfig
from synthloop.synth.latent_thoughts import LatentThoughts, LatentThoughtsConfig
from synthloop.synth.self_instruct import SelfInstruct, SelfInstructConfig

#: programs by the `kind` their config names
PROGRAMS: dict[str, type[SynthProgram]] = {
    SelfInstruct.name: SelfInstruct,
    ChatSamples.name: ChatSamples,
    HardNegatives.name: HardNegatives,
    LatentThoughts.name: LatentThoughts,
}

__all__ = [
    "PROGRAMS",
    "ChatProgram",
    "ChatSamples",
    "ChatSamplesConfig",
    "HardNegatives",
    "HardNegativesConfig",
    "LatentThoughts",
    "LatentThoughtsConfig",
    "SelfInstruct",
    "SelfInstructConfig",
    "SynthProgram",
    "build",
]


def build(config) -> SynthProgram:
    """The program a `program:` config section describes."""
    return PROGRAMS[config.kind](config)
