"""The verifier interface: a response and a reference in, a verdict with its reason out."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field


class Verdict(BaseModel):
    passed: bool
    score: float = Field(description="In [0, 1]; 1.0 when passed for binary verifiers.")
    reason: str = Field("", description="Why it passed or failed, in a few words (goes into filter reports).")
    extracted: str | None = Field(None, description="What the verifier read from the response, if anything.")


@runtime_checkable
class Verifier(Protocol):
    name: str

    def verify(self, response: str, reference: Any) -> Verdict: ...
