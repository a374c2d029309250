"""Responses built to satisfy (or to break) a set of IFEval constraints, mechanically, to prove that drawn kwargs
round-trip into the verifier: `satisfying_response(constraints)` must pass every checker, and
`breaking_response(constraints, i)` must fail checker i alone.

    satisfying_response([("punctuation:no_comma", {}), ("length_constraints:number_words",
                          {"relation": "at least", "num_words": 50})])

Built for every kind except `language:response_language` (no text in the other languages ships here: a
satisfying response for it is `None`; its breaking response, English text, is built). A breaking response is also
`None` when a phrase the other constraints need holds what must go (an end phrase with the letter to avoid, a
repeated request naming the keywords), or when it would be capitals without a common letter (langdetect then no
longer calls it English). The tests verify every response built for 400 random draws (10,000 passed when this was
written). The text is English filler arranged into the structure the constraints ask for (title, paragraphs,
sections, bullets, highlights, placeholders, postscript, end phrase...), then its sentences and words are counted
with the reference's own counters and the filler resized until the length limits hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import cycle

from synthloop.judges.verifiers.ifeval import reference_util
from synthloop.judges.verifiers.ifeval_constraints import LESS, Constraint

FILLER_TEXT = (
    "the morning sun rose over the quiet hills and the farmers walked out to their fields while birds sang in the "
    "old trees near the river where children played with small paper boats and the town woke slowly to another "
    "warm day of work and rest as the baker opened his shop on the main street and people stopped to talk about "
    "the weather the harvest and the music they had heard at the summer fair last night before the rain came down "
    "over the valley and the roads grew muddy so everyone stayed inside to read cook mend old clothes or simply "
    "sit by the window watching clouds drift above the green meadow until evening light turned the sky gold"
)
FILLER = FILLER_TEXT.split()


@dataclass
class _Spec:
    """What a response must do, normalized from (instruction id, kwargs) pairs."""

    counts: dict[str, int] = field(default_factory=dict)  # word -> at least this many times
    avoid: set[str] = field(default_factory=set)          # substrings none of our words may contain
    letters: dict[str, int] = field(default_factory=dict)  # letter -> at least this many times
    letter_max: dict[str, int] = field(default_factory=dict)  # letter -> at most this many times
    words: list[float] = field(default_factory=lambda: [0, math.inf])      # inclusive bounds
    sentences: list[float] = field(default_factory=lambda: [1, math.inf])
    capitals: list[float] = field(default_factory=lambda: [0, math.inf])
    star_paragraphs: int | None = None   # paragraphs separated by ***
    first_word: tuple[int, int, str] | None = None  # (paragraphs separated by blank lines, nth, its first word)
    placeholders: int = 0
    bullets: int = 0
    highlights: int = 0
    sections: tuple[str, int] | None = None
    postscript: str | None = None
    end: str | None = None
    repeat: str | None = None
    case: str | None = None
    title: bool = False
    json: bool = False
    quotation: bool = False
    two: bool = False
    constrained: bool = False
    comma: bool = False
    capital_start: bool = False
    buildable: bool = True


_FLAGS = {"json_format": "json", "two_responses": "two", "constrained_response": "constrained"}


def _bound(relation: str, n: int, broken: bool) -> tuple[float, float]:
    """Inclusive [low, high] for `count <relation> n`, or for its negation when broken."""
    if (relation == LESS) != broken:
        return 0, n - 1
    return n, math.inf


def _spec(constraints: Sequence[Constraint], broken: int | None) -> _Spec:
    s = _Spec()
    for index, (instruction_id, kw) in enumerate(constraints):
        b = index == broken
        kind = instruction_id.split(":", 1)[1]
        if kind in ("existence", "forbidden_words"):
            include = (kind == "existence") != b
            for w in kw["keywords" if kind == "existence" else "forbidden_words"]:
                if include:
                    s.counts[w] = max(1, s.counts.get(w, 0))
                else:
                    s.avoid.add(w.lower())
        elif kind == "frequency":
            low, _ = _bound(kw["relation"], int(kw["frequency"]), b)
            if low:
                s.counts[kw["keyword"]] = int(low)
            else:
                s.avoid.add(kw["keyword"].lower())
        elif kind == "letter_frequency":
            low, high = _bound(kw["let_relation"], int(kw["let_frequency"]), b)
            if low:
                s.letters[kw["letter"].lower()] = int(low)
            else:
                s.letter_max[kw["letter"].lower()] = int(high)
        elif kind == "response_language":
            s.buildable = s.buildable and b  # broken: English text does it
        elif kind == "number_sentences":
            s.sentences = _intersect(s.sentences, _bound(kw["relation"], int(kw["num_sentences"]), b))
        elif kind == "number_words":
            s.words = _intersect(s.words, _bound(kw["relation"], int(kw["num_words"]), b))
        elif kind == "capital_word_frequency":
            s.capitals = _intersect(s.capitals, _bound(kw["capital_relation"], int(kw["capital_frequency"]), b))
        elif kind == "number_paragraphs":
            s.star_paragraphs = int(kw["num_paragraphs"]) + b
        elif kind == "nth_paragraph_first_word":
            word = kw["first_word"].lower()
            s.first_word = (int(kw["num_paragraphs"]), int(kw["nth_paragraph"]), f"not{word}" if b else word)
        elif kind == "number_placeholders":
            s.placeholders = int(kw["num_placeholders"]) - b
        elif kind == "number_bullet_lists":
            s.bullets = int(kw["num_bullets"]) + b
        elif kind == "number_highlighted_sections":
            s.highlights = int(kw["num_highlights"]) - b
        elif kind == "multiple_sections":
            s.sections = (kw["section_spliter"], int(kw["num_sections"]) - b)
        elif kind == "postscript":
            s.postscript = None if b else kw["postscript_marker"]
        elif kind == "end_checker":
            s.end = None if b else kw["end_phrase"]
        elif kind == "repeat_prompt":
            s.repeat = None if b else kw["prompt_to_repeat"]
        elif kind == "english_capital":
            s.case = None if b else "upper"
        elif kind == "english_lowercase":
            s.case, s.capital_start = (None, True) if b else ("lower", False)
        elif kind in ("title", "json_format", "quotation", "two_responses", "constrained_response"):
            setattr(s, _FLAGS.get(kind, kind), not b)
        elif kind == "no_comma":
            s.comma = b
        else:
            raise ValueError(f"no response builder for {instruction_id}")
    if s.case:  # the case checkers also detect English: langdetect needs plenty of plain words around the rest
        extra = sum(s.counts.values()) + sum(s.letters.values()) + s.placeholders + s.highlights + 2 * s.bullets + \
            (3 * s.sections[1] if s.sections else 0)
        s.words[0] = max(s.words[0], min(60 + 4 * extra, s.words[1]))
    return s


def _fixed_text(spec: _Spec) -> str:
    """What the response must contain verbatim, whatever the filler."""
    parts = [spec.end, spec.postscript, spec.repeat, spec.sections[0] if spec.sections else None,
             spec.first_word[2] if spec.first_word else None, *spec.counts]
    return " ".join(p for p in parts if p).lower()


def _intersect(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [max(a[0], b[0]), min(a[1], b[1])]


class _Text:
    """The response's parts, assembled for a given amount of filler."""

    def __init__(self, spec: _Spec):
        self.spec = spec
        self.vocab = [w for w in FILLER if not any(a in w for a in spec.avoid) and not set(w) & set(spec.letter_max)]
        if len(self.vocab) < 8:
            raise ValueError("the constraints leave too few filler words")

    def words(self, start: int):
        return cycle(self.vocab[start % len(self.vocab):] + self.vocab[:start % len(self.vocab)])

    def body(self, sentences: int, per_sentence: int, periods: bool, start: int = 0) -> str:
        s, take = self.spec, self.words(start).__next__
        blocks = s.star_paragraphs or (s.first_word[0] if s.first_word else 1)
        lines: list[list[str]] = [[] for _ in range(blocks)]
        for i in range(max(sentences, blocks)):  # lead sentences, round-robin over the blocks
            words = [take() for _ in range(per_sentence)]
            block = i % blocks
            if s.first_word and block == s.first_word[1] - 1 and not lines[block]:
                words[0] = s.first_word[2]
            text = " ".join(words)
            lines[block].append(text[0].upper() + text[1:] + ("." if periods else ""))
        items = [take()]  # a line never starts with a highlight (it would count as a bullet)
        for word, times in s.counts.items():
            items += [word] * times
        for letter, times in s.letters.items():  # words that carry the letter (single letters upset langdetect)
            carriers = [w for w in self.vocab if letter in w] or [letter]
            while times > 0:
                word = carriers[times % len(carriers)]
                items.append(word)
                times -= word.count(letter)
        items += [f"[{take()}]" for _ in range(s.placeholders)]
        items += [f"*{take()}*" for _ in range(s.highlights)]
        items += [take().upper() for _ in range(int(s.capitals[0]))]
        if s.comma:
            items[0] += ","
        lines[0].append(" ".join(items))
        if s.title:
            lines[0].insert(1, f"<<{take()} {take()}>>")
        lines[0] += [f"* {take()} {take()}" for _ in range(s.bullets)]
        if s.sections:
            splitter, n = s.sections
            for i in range(n):
                lines[i % blocks] += [f"{splitter} {i + 1}", f"{take()} {take()}"]
        if s.postscript:
            lines[-1].append(f"{s.postscript} {take()} {take()}")
        if s.end:
            lines[-1].append(s.end)
        joined = ["\n".join(block) for block in lines]
        text = "\n***\n".join(joined) if s.star_paragraphs else "\n\n".join(joined)
        if s.capital_start:
            text = text[0].upper() + text[1:]
        return text

    def response(self, sentences: int, per_sentence: int, periods: bool) -> str:
        s = self.spec
        if s.constrained:
            text = "My answer is yes."
        elif s.json:
            take = self.words(0).__next__
            text = json.dumps({take(): self.body(sentences, per_sentence, False, start=3)})
        else:
            text = self.body(sentences, per_sentence, periods)
            if s.two:
                text += "\n******\n" + self.body(sentences, per_sentence + 1, periods, start=7)
        if s.repeat:
            text = f"{s.repeat}\n{text}"
        if s.case == "upper":
            text = text.upper()
        elif s.case == "lower":
            text = text.lower()
        return f'"{text}"' if s.quotation else text


def _build(constraints: Sequence[Constraint], broken: int | None) -> str | None:
    spec = _spec(constraints, broken)
    if not spec.buildable:
        return None
    fixed = _fixed_text(spec)
    util = reference_util()
    splitters = [spec.sections[0]] * spec.sections[1] if spec.sections else []
    capitals = [t for t in util.nltk.word_tokenize(" ".join(p for p in [spec.end, spec.postscript, *splitters] if p))
                if t.isupper()]
    if any(a in fixed for a in spec.avoid) or len(capitals) > spec.capitals[1] or \
            any(fixed.count(c) > n for c, n in spec.letter_max.items()):
        return None  # a phrase the response must contain has what it must avoid (only when breaking one)
    if spec.case == "upper" and set(spec.letter_max) & set("etaoinshr"):
        return None  # capitals without a common letter: langdetect no longer calls it English (often German)
    if spec.repeat and "," in spec.repeat and not spec.comma:
        return None  # the repeated request itself has a comma
    parts = _Text(spec)
    blocks = spec.star_paragraphs or (spec.first_word[0] if spec.first_word else 1)
    sentences, per_sentence, periods = max(blocks, int(spec.sentences[0])), 6, True
    text = ""
    for _ in range(60):  # resize the filler until the reference's own counts fall within the limits
        text = parts.response(sentences, per_sentence, periods)
        words, count = util.count_words(text), util.count_sentences(text)
        if count < spec.sentences[0]:
            sentences += int(spec.sentences[0] - count)
        elif count > spec.sentences[1] and sentences > blocks:
            sentences = max(blocks, sentences - int(count - spec.sentences[1]))
        elif count > spec.sentences[1] and periods:
            periods = False
        elif words < spec.words[0]:
            per_sentence += math.ceil((spec.words[0] - words) / max(sentences, 1))
        elif words > spec.words[1] and per_sentence > 1:
            per_sentence = max(1, per_sentence - math.ceil((words - spec.words[1]) / max(sentences, 1)))
        else:
            break
    return text


def satisfying_response(constraints: Sequence[Constraint]) -> str | None:
    """A response meeting every constraint (for `combination:repeat_prompt`, kwargs carry the prompt to repeat);
    None when that cannot be built here (`language:response_language`, or a repeated request that itself breaks
    another constraint)."""
    return _build(constraints, None)


def breaking_response(constraints: Sequence[Constraint], index: int) -> str | None:
    """A response breaking constraint `index` and meeting the others; None when that cannot be built here."""
    if not 0 <= index < len(constraints):
        raise IndexError(f"constraint {index} of {len(constraints)}")
    return _build(constraints, index)
