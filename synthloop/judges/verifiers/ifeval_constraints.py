"""IFEval's constraint kinds as data: seeded kwargs samplers, plain statements, conflicts, and whether a text
still states a constraint. The synthesis program `synth/verifiable_instructions.py` draws from here.

    rng = random.Random(0)
    drawn = draw_constraints(rng, 2, text="Write a poem about the sea.")  # [(instruction id, kwargs), ...]
    statement(*drawn[0])          # "Answer with at least 300 words."
    stated(*drawn[0], prompt)     # does `prompt` still say what the checker needs (the number, the keyword...)?

The ids and the checkers are the reference's (`lm_eval.tasks.ifeval.instructions_registry.INSTRUCTION_DICT`,
through `ifeval.py`); the conflict map is the reference's `INSTRUCTION_CONFLICTS` made symmetric, plus the few
pairs in `EXTRA_CONFLICTS` (each with its reason). kwargs follow the rows of IFEval's `input_data.jsonl`
(only the keys the instruction takes), so a record built from a draw is its own verifier reference.

Sampled values stay in the ranges `input_data.jsonl` uses, with a few rules so that every drawn set can be
met by one response (checked by `ifeval_responses.satisfying_response` in the tests): keywords never overlap
(a forbidden word is never a required one, nor a substring of one), a "less than" letter never occurs in any
phrase the response must contain, word and sentence limits leave room for each other and for the
structure the other constraints ask for, and section markers follow the case constraints.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from synthloop.judges.verifiers.ifeval import conflicts, description, instruction_ids, reference_util

Constraint = tuple[str, dict[str, Any]]

LESS, AT_LEAST = "less than", "at least"

#: pairs the reference map allows but no response can meet together, added here. The language checker wants the
#: whole response in another language (often another script); these checkers need English words or Latin letters.
EXTRA_CONFLICTS: dict[str, set[str]] = {
    "language:response_language": {"keywords:letter_frequency", "change_case:capital_word_frequency",
                                   "length_constraints:nth_paragraph_first_word"},
}

#: closing phrases (the reference's two, and comma-free ones from input_data.jsonl)
END_PHRASES = ("Any other questions?", "Is there anything else I can help with?", "Does this make sense?",
               "Let me know if you have additional questions.", "Hope you agree with me.", "That is all you need!",
               "So what is next?", "Peace!")
#: letters a "less than" letter constraint uses: rare in English, as in input_data.jsonl (q, j, ...)
RARE_LETTERS = "qjxzkvwyfbg"

# The ranges of input_data.jsonl (see the module docstring), as value lists drawn uniformly.
_SENTENCES = {LESS: (3, 4, 5, 6, 8, 10, 15, 20, 25, 30), AT_LEAST: (2, 3, 4, 5, 6, 8, 10, 15, 20, 25, 30, 40)}
_WORDS = {LESS: (50, 80, 100, 120, 150, 200, 250, 300, 400),
          AT_LEAST: (50, 100, 150, 200, 250, 300, 350, 400, 500, 600, 800)}
_KEYWORD_TIMES = {LESS: (2, 3, 4, 5), AT_LEAST: (1, 2, 2, 3, 4, 5, 6)}
_LETTER_TIMES = {LESS: (2, 3, 4, 5, 6, 8), AT_LEAST: (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 40)}
_CAPITAL_TIMES = {LESS: (3, 4, 5, 8, 10, 15, 20), AT_LEAST: (1, 2, 3, 4, 5, 10, 15, 20)}
_SPLITTERS = {"upper": ("SECTION", "PART"), "lower": ("section", "part"), "title": ("Section", "Part", "Day"),
              None: ("Section", "SECTION", "Part", "PARAGRAPH", "Day")}

#: words per sentence a real answer may use, for the word/sentence limits to stay compatible
_MIN_WORDS_PER_SENTENCE, _MAX_WORDS_PER_SENTENCE = 8, 30


def family(instruction_id: str) -> str:
    """The part before ':' ("length_constraints" for "length_constraints:number_words")."""
    return instruction_id.split(":", 1)[0]


def conflicting(a: str, b: str) -> bool:
    table = conflicts()
    return (b in table.get(a, ()) or a in table.get(b, ()) or b in EXTRA_CONFLICTS.get(a, ())
            or a in EXTRA_CONFLICTS.get(b, ()))


def compatible(ids: Sequence[str]) -> bool:
    """No two of `ids` conflict (and none repeats)."""
    return all(not conflicting(a, b) for i, a in enumerate(ids) for b in ids[i + 1:])


# ---- drawing -------------------------------------------------------------------------------------------------


def draw_ids(rng: random.Random, k: int, families: Sequence[str] | None = None) -> list[str]:
    """k distinct compatible instruction ids, uniformly among those still compatible at each step (a draw that
    runs out of options starts again, so ids that conflict with most others appear mostly alone)."""
    pool = list(families) if families else instruction_ids()
    unknown = sorted(set(pool) - set(instruction_ids()))
    if unknown:
        raise ValueError(f"unknown IFEval instruction ids: {', '.join(unknown)}")
    for _ in range(200):
        chosen: list[str] = []
        while len(chosen) < k:
            options = [i for i in pool if i not in chosen and all(not conflicting(i, c) for c in chosen)]
            if not options:
                break
            chosen.append(rng.choice(options))
        if len(chosen) == k:
            return chosen
    raise ValueError(f"cannot draw {k} compatible instructions from: {', '.join(pool)}")


def draw_constraints(rng: random.Random, k: int, families: Sequence[str] | None = None, *,
                     text: str = "") -> list[Constraint]:
    """k compatible constraints (instruction id, kwargs) with sampled kwargs. Keyword constraints take their words
    from `text` (the base task) where it has enough content words, else from the reference's word list."""
    ids = draw_ids(rng, k, families)
    return sample_kwargs(rng, ids, text=text)


class _Draw:
    """What the kwargs samplers share while one set is drawn: the ids, the case rule, the words already used
    and the phrases every response will contain."""

    def __init__(self, rng: random.Random, ids: Sequence[str], text: str):
        self.rng, self.ids = rng, set(ids)
        self.case = ("upper" if "change_case:english_capital" in self.ids
                     else "lower" if "change_case:english_lowercase" in self.ids else None)
        self.kwargs: dict[str, dict[str, Any]] = {}
        self.required: list[str] = []  # phrases the response must contain
        self.words: list[str] = []     # keywords chosen so far (distinct, none a substring of another)
        self.task_words = content_words(text)

    def fresh_word(self, from_task: bool = True) -> str:
        pools = ([self.task_words] if from_task and self.task_words else []) + [list(reference_util().WORD_LIST)]
        for pool in pools:
            options = [w for w in pool if self._usable(w)]
            if options:
                word = self.rng.choice(options)
                self.words.append(word)
                return word
        raise ValueError("no keyword left to draw")  # 1,500 words in the reference list: not reached

    def _usable(self, word: str) -> bool:
        if not re.fullmatch(r"[a-z]{3,}", word):
            return False
        if any(word in w or w in word for w in self.words):
            return False
        return not any(word in phrase.lower() for phrase in self.required)


def content_words(text: str) -> list[str]:
    """Distinct lowercase words of `text` worth using as keywords (4+ letters, not stop words), in order."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = re.findall(r"[A-Za-z]+", text)
    return list(dict.fromkeys(w.lower() for w in words if len(w) >= 4 and w.lower() not in ENGLISH_STOP_WORDS))


def _relation(d: _Draw) -> str:
    return d.rng.choice((LESS, AT_LEAST))


def _s_case(d: _Draw) -> dict[str, Any]:
    return {}


def _s_capital_frequency(d: _Draw) -> dict[str, Any]:
    relation = _relation(d)
    return {"capital_frequency": d.rng.choice(_CAPITAL_TIMES[relation]), "capital_relation": relation}


def _s_end(d: _Draw) -> dict[str, Any]:
    phrase = d.rng.choice(END_PHRASES)
    d.required.append(phrase)
    return {"end_phrase": phrase}


def _s_postscript(d: _Draw) -> dict[str, Any]:
    marker = d.rng.choice(("P.S.", "P.P.S"))
    d.required.append(marker)
    return {"postscript_marker": marker}


def _s_sections(d: _Draw) -> dict[str, Any]:
    few_capitals = d.kwargs.get("change_case:capital_word_frequency", {}).get("capital_relation") == LESS
    splitter = d.rng.choice(_SPLITTERS[d.case or ("title" if few_capitals else None)])
    d.required.append(splitter)
    return {"section_spliter": splitter, "num_sections": d.rng.randint(2, 6)}


def _s_constrained(d: _Draw) -> dict[str, Any]:
    d.required.append("My answer is yes.")
    return {}


def _s_existence(d: _Draw) -> dict[str, Any]:
    words = [d.fresh_word(from_task=i == 0 or d.rng.random() < 0.5) for i in range(d.rng.randint(1, 3))]
    d.required.extend(words)
    return {"keywords": words}


def _s_frequency(d: _Draw) -> dict[str, Any]:
    relation = _relation(d)
    word = d.fresh_word()
    if relation == AT_LEAST:
        d.required.append(word)
    return {"keyword": word, "frequency": d.rng.choice(_KEYWORD_TIMES[relation]), "relation": relation}


def _s_first_word(d: _Draw) -> dict[str, Any]:
    paragraphs = d.rng.randint(2, 6)
    word = d.fresh_word()
    d.required.append(word)
    return {"num_paragraphs": paragraphs, "nth_paragraph": d.rng.randint(1, paragraphs), "first_word": word}


def _s_forbidden(d: _Draw) -> dict[str, Any]:
    # drawn after every kind that puts words in the response, so a forbidden word is never a required one
    words = [d.fresh_word() for _ in range(d.rng.randint(1, 3))]
    return {"forbidden_words": words}


def _s_letter(d: _Draw) -> dict[str, Any]:
    relation = _relation(d)
    used = "".join(d.required).lower()
    rare = [c for c in RARE_LETTERS if c not in used]  # "less than": a rare letter no required phrase contains
    if relation == LESS and not rare:
        relation = AT_LEAST
    letter = d.rng.choice(rare if relation == LESS else "abcdefghijklmnopqrstuvwxyz")
    return {"letter": letter, "let_frequency": d.rng.choice(_LETTER_TIMES[relation]), "let_relation": relation}


def _s_language(d: _Draw) -> dict[str, Any]:
    return {"language": d.rng.choice([c for c in reference_util().LANGUAGE_CODES if c != "en"])}


def _s_sentences(d: _Draw) -> dict[str, Any]:
    relation = _relation(d)
    return {"relation": relation, "num_sentences": d.rng.choice(_SENTENCES[relation])}


def _s_paragraphs(d: _Draw) -> dict[str, Any]:
    return {"num_paragraphs": d.rng.randint(2, 6)}


def _s_words(d: _Draw) -> dict[str, Any]:
    relation = _relation(d)
    return {"relation": relation, "num_words": d.rng.choice(_WORDS[relation])}


def _s_placeholders(d: _Draw) -> dict[str, Any]:
    return {"num_placeholders": d.rng.choice((1, 2, 3, 4, 5, 6, 8, 10, 12))}


def _s_bullets(d: _Draw) -> dict[str, Any]:
    return {"num_bullets": d.rng.randint(1, 8)}


def _s_highlights(d: _Draw) -> dict[str, Any]:
    return {"num_highlights": d.rng.choice((1, 2, 3, 4, 5, 6, 8))}


def _s_repeat(d: _Draw) -> dict[str, Any]:
    # the request to repeat is the rewritten instruction, known only after the rewrite: the program fills it in
    return {"prompt_to_repeat": ""}


#: kwargs samplers, in the order they run (words the response must contain before forbidden words and rare
#: letters; case rules before section markers)
SAMPLERS: dict[str, Callable[[_Draw], dict[str, Any]]] = {
    "change_case:english_capital": _s_case,
    "change_case:english_lowercase": _s_case,
    "change_case:capital_word_frequency": _s_capital_frequency,
    "startend:end_checker": _s_end,
    "detectable_content:postscript": _s_postscript,
    "detectable_format:multiple_sections": _s_sections,
    "detectable_format:constrained_response": _s_constrained,
    "keywords:existence": _s_existence,
    "keywords:frequency": _s_frequency,
    "length_constraints:nth_paragraph_first_word": _s_first_word,
    "keywords:forbidden_words": _s_forbidden,
    "keywords:letter_frequency": _s_letter,
    "language:response_language": _s_language,
    "length_constraints:number_sentences": _s_sentences,
    "length_constraints:number_paragraphs": _s_paragraphs,
    "length_constraints:number_words": _s_words,
    "detectable_content:number_placeholders": _s_placeholders,
    "detectable_format:number_bullet_lists": _s_bullets,
    "detectable_format:number_highlighted_sections": _s_highlights,
    "detectable_format:json_format": _s_case,
    "detectable_format:title": _s_case,
    "combination:two_responses": _s_case,
    "combination:repeat_prompt": _s_repeat,
    "punctuation:no_comma": _s_case,
    "startend:quotation": _s_case,
}


def sample_kwargs(rng: random.Random, ids: Sequence[str], *, text: str = "") -> list[Constraint]:
    """Sampled kwargs for each of `ids` (in the given order), consistent with each other."""
    missing = sorted(set(ids) - set(SAMPLERS))
    if missing:
        raise ValueError(f"no kwargs sampler for: {', '.join(missing)}")
    d = _Draw(rng, ids, text)
    for instruction_id in SAMPLERS:
        if instruction_id in d.ids:
            d.kwargs[instruction_id] = SAMPLERS[instruction_id](d)
    _fit_lengths(d)
    return [(i, d.kwargs[i]) for i in ids]


def _fit_lengths(d: _Draw) -> None:
    """Word and sentence limits that a real answer can meet together with the structure the set asks for."""
    kw = d.kwargs
    words, sentences = kw.get("length_constraints:number_words"), kw.get("length_constraints:number_sentences")
    blocks = max([kw.get("length_constraints:number_paragraphs", {}).get("num_paragraphs", 1),
                  kw.get("length_constraints:nth_paragraph_first_word", {}).get("num_paragraphs", 1),
                  kw.get("detectable_format:multiple_sections", {}).get("num_sections", 1)])
    if sentences and sentences["relation"] == LESS and sentences["num_sentences"] <= blocks:
        sentences["num_sentences"] = blocks + 1 + d.rng.randint(0, 3)  # a paragraph or section is a sentence or more
    if not words:
        return
    items = sum(kw.get(i, {}).get(key, 0) for i, key in [
        ("detectable_format:number_bullet_lists", "num_bullets"),
        ("detectable_format:number_highlighted_sections", "num_highlights"),
        ("detectable_content:number_placeholders", "num_placeholders"),
        ("keywords:frequency", "frequency"), ("change_case:capital_word_frequency", "capital_frequency")])
    if words["relation"] == LESS:
        floor = 4 * items + 10 * blocks + 20
        if sentences and sentences["relation"] == AT_LEAST:
            floor = max(floor, _MIN_WORDS_PER_SENTENCE * sentences["num_sentences"])
        if words["num_words"] < floor:
            words["num_words"] = _round_up(floor)
    elif sentences and sentences["relation"] == LESS:
        room = _MAX_WORDS_PER_SENTENCE * (sentences["num_sentences"] - 1)
        if words["num_words"] > room:
            sentences["num_sentences"] = math.ceil(words["num_words"] / _MAX_WORDS_PER_SENTENCE) + 1


def _round_up(n: int, step: int = 10) -> int:
    return -(-n // step) * step


# ---- statements ----------------------------------------------------------------------------------------------


def _quoted(words: Sequence[str]) -> str:
    shown = [f'"{w}"' for w in words]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def statement(instruction_id: str, kwargs: dict[str, Any]) -> str:
    """The constraint in plain words: the reference checker's own description, except where that prints a Python
    list or tuple (keywords, options) or runs the end phrase into its sentence."""
    if instruction_id == "keywords:existence":
        return f"Include the keywords {_quoted(kwargs['keywords'])} in the response."
    if instruction_id == "keywords:forbidden_words":
        return f"Do not include the keywords {_quoted(kwargs['forbidden_words'])} in the response."
    if instruction_id == "detectable_format:constrained_response":
        return ('Answer with one of the following options: "My answer is yes.", "My answer is no.", '
                '"My answer is maybe."')
    if instruction_id == "startend:end_checker":
        return (f'Finish your response with this exact phrase: "{kwargs["end_phrase"]}". No other words should '
                "follow this phrase.")
    if instruction_id == "combination:repeat_prompt":
        return description(instruction_id, {"prompt_to_repeat": kwargs.get("prompt_to_repeat") or "-"})
    return description(instruction_id, kwargs)


# ---- is it still stated? -------------------------------------------------------------------------------------

_NUMBER_WORDS = {  # written by hand: no number-spelling library is installed, and 1-20 and the tens are all we need
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten",
    11: "eleven", 12: "twelve", 13: "thirteen", 14: "fourteen", 15: "fifteen", 16: "sixteen", 17: "seventeen",
    18: "eighteen", 19: "nineteen", 20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty",
    70: "seventy", 80: "eighty", 90: "ninety", 100: "(?:one |a )?hundred"}
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth",
             9: "ninth", 10: "tenth"}
_RELATION_CUES = {
    LESS: r"\b(?:less|fewer|under|below|at most|maximum|no more|not more|not exceed|up to|within|shorter)\b",
    AT_LEAST: r"\b(?:at least|minimum|or more|more than|no fewer|no less|not less|not fewer|over|exceed|longer)\b"
              r"|\d\+",
}


def _has(pattern: str, text: str, flags: int = re.IGNORECASE) -> bool:
    return re.search(pattern, text, flags) is not None


def _number(n: int, text: str) -> bool:
    forms = [rf"(?<![\d.]){n:,}(?![\d])", rf"(?<![\d.]){n}(?![\d])"]
    if n in _NUMBER_WORDS:
        forms.append(rf"\b{_NUMBER_WORDS[n]}\b")
    forms += {1: [r"\bonce\b", r"\bsingle\b"], 2: [r"\btwice\b", r"\bpair\b"]}.get(n, [])
    return any(_has(f, text) for f in forms)


def _word(word: str, text: str) -> bool:
    return _has(rf"\b{re.escape(word)}\b", text)


def _counted(kwargs: dict[str, Any], count_key: str, relation_key: str | None, noun: str, text: str) -> bool:
    ok = _number(int(kwargs[count_key]), text) and _has(noun, text)
    if relation_key:
        ok = ok and _has(_RELATION_CUES[kwargs[relation_key]], text)
    return ok


def _s_letter_stated(kw: dict[str, Any], text: str) -> bool:
    letter = re.escape(kw["letter"])
    named = _has(rf"\bletters?\s+['\"“‘]?{letter}\b", text) or _has(rf"['\"“‘]{letter}['\"”’]", text)
    return named and _counted(kw, "let_frequency", "let_relation", r"\S", text)


def _first_word_stated(kw: dict[str, Any], text: str) -> bool:
    nth = int(kw["nth_paragraph"])
    named_nth = _number(nth, text) or (nth in _ORDINALS and _word(_ORDINALS[nth], text)) or \
        (nth == 1 and _has(r"\bfirst\b|\bopen|\bbegin|\bstart", text))
    return _word(kw["first_word"], text) and _counted(kw, "num_paragraphs", None, "paragraph", text) and named_nth


#: per instruction: does an instruction text still state what its checker needs (the numbers, words, markers)?
STATED: dict[str, Callable[[dict[str, Any], str], bool]] = {
    "keywords:existence": lambda kw, t: all(_word(w, t) for w in kw["keywords"]),
    "keywords:frequency": lambda kw, t: _word(kw["keyword"], t) and _counted(kw, "frequency", "relation", r"\S", t),
    "keywords:forbidden_words": lambda kw, t: all(_word(w, t) for w in kw["forbidden_words"]) and _has(
        r"\bnot\b|n't\b|\bnever\b|\bavoid|\bwithout\b|\bexclud|\brefrain|\bforbid|\bno\b|\bban", t),
    "keywords:letter_frequency": _s_letter_stated,
    "language:response_language": lambda kw, t: _word(reference_util().LANGUAGE_CODES[kw["language"]], t),
    "length_constraints:number_sentences": lambda kw, t: _counted(kw, "num_sentences", "relation", "sentence", t),
    "length_constraints:number_paragraphs": lambda kw, t: _counted(kw, "num_paragraphs", None, "paragraph", t)
    and _has(r"\*\*\*|divider|asterisk", t),
    "length_constraints:number_words": lambda kw, t: _counted(kw, "num_words", "relation", "word", t),
    "length_constraints:nth_paragraph_first_word": _first_word_stated,
    "detectable_content:number_placeholders": lambda kw, t: _counted(kw, "num_placeholders", None,
                                                                     "placeholder|square bracket", t),
    "detectable_content:postscript": lambda kw, t: _has(
        r"p\.\s?p\.\s?s" if kw["postscript_marker"] == "P.P.S" else r"p\.\s?s\.", t) and _has(r"postscript|\bend", t),
    "detectable_format:number_bullet_lists": lambda kw, t: _counted(kw, "num_bullets", None, "bullet", t),
    "detectable_format:constrained_response": lambda kw, t: _has(r"my answer is", t)
    and all(_word(w, t) for w in ("yes", "no", "maybe")),
    "detectable_format:number_highlighted_sections": lambda kw, t: _counted(kw, "num_highlights", None,
                                                                            "highlight", t),
    "detectable_format:multiple_sections": lambda kw, t: _has(rf"\b{re.escape(kw['section_spliter'])}\b", t, 0)
    and _number(int(kw["num_sections"]), t),
    "detectable_format:json_format": lambda kw, t: _has(r"\bjson\b", t),
    "detectable_format:title": lambda kw, t: _has(r"<<|angular|angle bracket", t),
    "combination:two_responses": lambda kw, t: _has(r"\*{6}|(?:\b6|\bsix)\s+asterisk", t),
    "combination:repeat_prompt": lambda kw, t: True,  # the program appends this one itself
    "startend:end_checker": lambda kw, t: " ".join(kw["end_phrase"].lower().split()) in " ".join(t.lower().split()),
    "change_case:capital_word_frequency": lambda kw, t: _counted(kw, "capital_frequency", "capital_relation",
                                                                 "capital|upper", t),
    "change_case:english_capital": lambda kw, t: _has(r"capital|upper\s?-?case|all caps|\bCAPS\b", t),
    "change_case:english_lowercase": lambda kw, t: _has(r"lower\s?-?case|small letters|no capital", t),
    "punctuation:no_comma": lambda kw, t: _has(r"comma", t),
    "startend:quotation": lambda kw, t: _has(r"quot", t),
}


def stated(instruction_id: str, kwargs: dict[str, Any], text: str) -> bool:
    """Whether `text` still states the constraint: the values its checker tests (numbers, keywords, letters,
    markers, the language, the end phrase) and what it is about (words, sentences, bullets...). A cheap,
    conservative test: a rewrite that says the same thing in other words may fail it (it is then restated)."""
    return STATED[instruction_id](kwargs, text)
