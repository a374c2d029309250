"""Programmatic verifiers: deterministic checks that give verifiable rewards (RLVR) and filter data."""

from synthloop.judges.verifiers.base import Verdict, Verifier
from synthloop.judges.verifiers.math import MathAnswerVerifier, extract_answer, gsm8k_gold, parse_number
from synthloop.judges.verifiers.span import SpanVerifier

__all__ = ["MathAnswerVerifier", "SpanVerifier", "Verdict", "Verifier", "extract_answer", "gsm8k_gold", "parse_number"]
