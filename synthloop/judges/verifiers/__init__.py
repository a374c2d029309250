"""Programmatic verifiers: deterministic checks that give verifiable rewards (RLVR) and filter data."""

from synthloop.judges.verifiers.base import Verdict, Verifier
from synthloop.judges.verifiers.math import MathAnswerVerifier, extract_answer, gsm8k_gold, parse_number

__all__ = ["MathAnswerVerifier", "Verdict", "Verifier", "extract_answer", "gsm8k_gold", "parse_number"]
