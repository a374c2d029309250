"""Synthesis programs: DSPy modules that generate training data (one file per method)."""

from __future__ import annotations

from synthloop.synth.base import BaseProgramConfig, SynthProgram
from synthloop.synth.chat import ChatProgram, ChatSamples, ChatSamplesConfig
from synthloop.synth.hard_negatives import HardNegatives, HardNegativesConfig
from synthloop.synth.latent_thoughts import LatentThoughts, LatentThoughtsConfig
from synthloop.synth.rewrite import Rewrite, RewriteConfig
from synthloop.synth.self_instruct import SelfInstruct, SelfInstructConfig
from synthloop.synth.similar_problems import SimilarProblems, SimilarProblemsConfig
from synthloop.synth.skill_extraction import SkillExtraction, SkillExtractionConfig
from synthloop.synth.skill_inventory import SkillInventory, build_inventory
from synthloop.synth.skill_labels import SkillLabels, SkillLabelsConfig
from synthloop.synth.skillmix import SkillMix, SkillMixConfig
from synthloop.synth.task_generation import TaskGeneration, TaskGenerationConfig
from synthloop.synth.verifiable_instructions import VerifiableInstructions, VerifiableInstructionsConfig

#: programs by the `kind` their config names
PROGRAMS: dict[str, type[SynthProgram]] = {
    SelfInstruct.name: SelfInstruct,
    ChatSamples.name: ChatSamples,
    HardNegatives.name: HardNegatives,
    LatentThoughts.name: LatentThoughts,
    TaskGeneration.name: TaskGeneration,
    SkillExtraction.name: SkillExtraction,
    SkillMix.name: SkillMix,
    Rewrite.name: Rewrite,
    SimilarProblems.name: SimilarProblems,
    SkillLabels.name: SkillLabels,
    VerifiableInstructions.name: VerifiableInstructions,
}

__all__ = ["PROGRAMS", "BaseProgramConfig", "ChatProgram", "ChatSamples", "ChatSamplesConfig", "HardNegatives",
           "HardNegativesConfig", "LatentThoughts", "LatentThoughtsConfig", "Rewrite", "RewriteConfig", "SelfInstruct",
           "SelfInstructConfig", "SimilarProblems", "SimilarProblemsConfig", "SkillExtraction", "SkillExtractionConfig",
           "SkillInventory", "SkillLabels", "SkillLabelsConfig", "SkillMix", "SkillMixConfig", "SynthProgram",
           "TaskGeneration", "TaskGenerationConfig", "VerifiableInstructions", "VerifiableInstructionsConfig", "build",
           "build_inventory"]


def build(config) -> SynthProgram:
    """The program a `program:` config section describes; a problem with its files is a `ConfigError`."""
    from synthloop.configs import ConfigError

    try:
        return PROGRAMS[config.kind](config)
    except ConfigError:
        raise
    except ValueError as exc:  # e.g. an inventory that does not parse, fewer skills than k
        raise ConfigError(f"program ({config.kind}): {exc}") from None
