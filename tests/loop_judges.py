"""A deterministic judge for control-flow tests of loops on the tiny random model, whose answers are noise
(the math verifier would almost never accept one, and training stages would then have no data).

It is a real `Judge` over the real sampled text: the score is the share of distinct characters, so
samples differ in score (preference pairs form) and all are accepted with min_score 0 (SFT data forms).
"""

from __future__ import annotations

from synthloop.judges.base import Judge, Judgement


class DistinctChars(Judge):
    name = "distinct_chars"

    def score(self, items):
        return [Judgement(score=len(set(i.response)) / (len(i.response) + 1)) for i in items]


def make() -> DistinctChars:
    return DistinctChars()


class NoisyDistinctChars(DistinctChars):
    """`DistinctChars` that, on its first call in a process, also makes noise the ways libraries do: a warning, a
    logger line, a child process writing to stderr (as vLLM's engine process does). For the quiet-console test."""

    noisy = True

    def score(self, items):
        if NoisyDistinctChars.noisy:
            NoisyDistinctChars.noisy = False
            import logging
            import subprocess
            import sys
            import warnings

            warnings.warn("LIB-NOISE-WARNING", UserWarning, stacklevel=1)
            logging.getLogger("somelibrary").warning("LIB-NOISE-LOGGER")
            subprocess.run([sys.executable, "-c", "import sys; print('LIB-NOISE-CHILD', file=sys.stderr)"], check=True)
        return super().score(items)


def noisy() -> NoisyDistinctChars:
    return NoisyDistinctChars()
