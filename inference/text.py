"""Offline sentence splitting and word tokenization with character offsets, close to the corpora's own.

The registered corpora (Crichton et al.'s splits) cut every non-alphanumeric character into a word of
its own: ``5-fluorouracil`` is ``5 - fluorouracil``, ``2.5 mcg/kg`` is ``2 . 5 mcg / kg``, ``(IDM)`` is
``( IDM )``. ``words`` does the same: a word is a maximal run of letters and digits, or any other single
non-space character.

Sentences end after ``.``, ``!`` or ``?`` (and any closing quotes or brackets right after it) when
whitespace follows and the next word starts with an upper-case letter, a digit or an opening bracket,
unless the word before the full stop is a known abbreviation (``e.g.``, ``et al.``, ``Fig.``, ``vs.``,
``Dr.``, ...) or a single upper-case initial (``J. Smith``). A line break that leaves an empty line also
ends a sentence. Nothing else does: a full stop inside a number (``2.5``) has no whitespace after it.
``tests/test_inference_text.py`` measures the agreement with the BC5CDR test split's sentences and words on
the raw PubTator text of the same 500 abstracts.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[^\W_]+|\S")
_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s)")
_NEXT = re.compile(r"\s+([A-Z0-9(\[\"“])")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_ABBREVIATIONS = (
    "e.g i.e al vs viz cf etc approx ca fig figs eq ref refs no nos dr mr mrs ms prof st sp spp var"
)
ABBREVIATIONS = frozenset(f"{_ABBREVIATIONS} resp incl dept univ inc ltd co jr sr".split(" "))


def words(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each word of ``text[start:end]``, in ``text``'s offsets."""
    end = len(text) if end is None else end
    return [(m.start(), m.end()) for m in WORD.finditer(text, start, end)]


def _abbreviation_before(text: str, stop: int) -> bool:
    """Whether the full stop at ``stop`` ends an abbreviation or an initial."""
    if text[stop] != ".":
        return False
    start = stop
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "([":
        start -= 1
    word = text[start:stop]
    return word.lower().rstrip(".") in ABBREVIATIONS or (len(word) == 1 and word.isupper())


def sentences(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each sentence of ``text``, trimmed of surrounding whitespace."""
    cuts = [0]
    for block_end in [m.start() for m in _BLANK_LINE.finditer(text)] + [len(text)]:
        block_start = cuts[-1]
        for m in _END.finditer(text, block_start, block_end):
            following = _NEXT.match(text, m.end(), block_end)
            if following and not _abbreviation_before(text, m.start()):
                cuts.append(m.end())
        cuts.append(block_end)
    spans = []
    for start, end in zip(cuts, cuts[1:]):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans
