"""Programmatic verifiers: deterministic checks that give verifiable rewards (RLVR) and filter data.

Every verifier has `name` and `verify(response, reference) -> Verdict`; `judges.VerifierJudge` makes
any of them a judge. `VERIFIERS` builds them by name (configs and the CLI use it).
"""

from synthloop.judges.verifiers.base import Verdict, Verifier
from synthloop.judges.verifiers.code import CodeVerifier
from synthloop.judges.verifiers.ifeval import IFEvalVerifier
from synthloop.judges.verifiers.math import MathAnswerVerifier, extract_answer, gsm8k_gold, parse_number
from synthloop.judges.verifiers.span import SpanVerifier
from synthloop.judges.verifiers.well_formed import WellFormedVerifier

#: verifiers by the name configs use
VERIFIERS = {
    "math_answer": MathAnswerVerifier,
    "ifeval": IFEvalVerifier,
    "ifeval_loose": lambda: IFEvalVerifier(loose=True),
    "code": CodeVerifier,
    "span_in_passage": SpanVerifier,
    "well_formed": WellFormedVerifier,
}

__all__ = [
    "VERIFIERS",
    "CodeVerifier",
    "IFEvalVerifier",
    "MathAnswerVerifier",
    "SpanVerifier",
    "Verdict",
    "Verifier",
    "WellFormedVerifier",
    "extract_answer",
    "gsm8k_gold",
    "parse_number",
]
