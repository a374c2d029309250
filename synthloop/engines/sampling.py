"""Per-row seeded sampling for batched `transformers` generation.

`generate(do_sample=True)` draws every row from one global RNG, so a request's output depends on
which other requests share its batch. This processor samples each row by the Gumbel-max trick
from that row's own generator (seeded by the request), after temperature and top-p, so a seeded
request gives the same output whatever batch it lands in. Generation then runs greedy
(`do_sample=False`): the argmax of logits + Gumbel noise is a sample from softmax(logits / T).
It also ends each row at that row's own `max_tokens` by forcing end-of-sequence.
"""

from __future__ import annotations

import os

import torch
from transformers import LogitsProcessor


class RowSampler(LogitsProcessor):
    def __init__(
        self,
        temperatures: list[float],
        top_ps: list[float],
        seeds: list[int | None],
        max_tokens: list[int],
        prompt_len: int,
        eos_token_id: int,
    ):
        self.temperatures = temperatures
        self.top_ps = top_ps
        self.max_tokens = max_tokens
        self.prompt_len = prompt_len
        self.eos = eos_token_id
        self.generators = []
        for seed in seeds:
            g = torch.Generator()
            g.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(6), "little"))
            self.generators.append(g)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        out = scores.float().clone()
        for i in range(out.shape[0]):
            row = out[i]
            if step >= self.max_tokens[i]:  # this row's budget is spent: end it here
                row.fill_(float("-inf"))
                row[self.eos] = 0.0
                continue
            t = self.temperatures[i]
            if t <= 0:
                continue  # greedy: the argmax of the (possibly constrained) logits
            row.div_(t)
            if self.top_ps[i] < 1.0:
                sorted_logits, order = torch.sort(row, descending=True)
                probs = torch.softmax(sorted_logits, dim=-1)
                cumulative = torch.cumsum(probs, dim=-1)
                drop = cumulative - probs > self.top_ps[i]
                row[order[drop]] = float("-inf")
            uniform = torch.rand(row.shape, generator=self.generators[i]).clamp_(1e-20, 1.0)
            row.add_(-torch.log(-torch.log(uniform)))
        return out


class GrammarConstraint(LogitsProcessor):
    """JSON-schema constraint per row with xgrammar matchers (like `xgrammar.contrib.hf.LogitsProcessor`,
    which asserts when a row is ended by force at its token budget; here such a row is just released)."""

    def __init__(self, compiled_grammars: list, vocab_size: int):
        import xgrammar as xgr

        self.matchers = [xgr.GrammarMatcher(g) for g in compiled_grammars]
        self.bitmask = xgr.allocate_token_bitmask(len(compiled_grammars), vocab_size)
        self.released = [False] * len(compiled_grammars)
        self.started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        import xgrammar as xgr

        if self.started:
            for i, matcher in enumerate(self.matchers):
                if (
                    not self.released[i]
                    and not matcher.is_terminated()
                    and not matcher.accept_token(int(input_ids[i, -1]))
                ):
                    self.released[i] = True  # ended by force (budget): nothing left to constrain
        self.started = True
        active = [i for i, m in enumerate(self.matchers) if not self.released[i] and not m.is_terminated()]
        if not active:
            return scores
        for i in active:
            self.matchers[i].fill_next_token_bitmask(self.bitmask, i)
        masked = scores.float().clone()
        rows = torch.tensor(active)
        sub = masked[rows]
        xgr.apply_token_bitmask_inplace(sub, self.bitmask[rows].to(sub.device))
        masked[rows] = sub
        return masked
