"""Lexicon-based sentiment scoring with negation and intensifiers.

Small on purpose: a few hundred words of English with weights from -3 to 3.
A negator ("not", "never", "no", "n't") within the three words before a
sentiment word flips and damps it; an intensifier ("very", "really") right
before it strengthens it. The sum is squashed into [-1, 1].
"""

from __future__ import annotations

import math
import re

_POSITIVE = {
    3: "excellent outstanding amazing superb perfect wonderful fantastic brilliant love loved loving flawless",
    2: "great good happy pleased delighted awesome enjoy enjoyed nice recommend recommended fast friendly "
    "helpful beautiful reliable impressive smooth easy best glad thanks",
    1: "ok okay fine decent fair works working solid useful clean quick cheap like liked",
}
_NEGATIVE = {
    3: "terrible awful horrible worst hate hated useless disgusting scam broken unacceptable",
    2: "bad poor slow rude disappointed disappointing angry refund broke crashed crash fails failed "
    "wrong missing damaged late dirty expensive buggy",
    1: "meh bland confusing noisy problem issue issues difficult hard wait waited",
}

LEXICON: dict = {}
for weight, words in _POSITIVE.items():
    LEXICON.update((w, float(weight)) for w in words.split())
for weight, words in _NEGATIVE.items():
    LEXICON.update((w, -float(weight)) for w in words.split())

NEGATORS = frozenset("not no never none nobody nothing neither nor cannot without hardly".split())
INTENSIFIERS = {"very": 1.5, "really": 1.5, "extremely": 2.0, "so": 1.3, "super": 1.5, "totally": 1.5}
_NEGATION_DAMPING = -0.7
_ALPHA = 6.0  # squashing: score = s / sqrt(s*s + alpha)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def tokens(text: str) -> list:
    return _WORD.findall(text.lower())


def score(text: str, extra: dict | None = None) -> tuple:
    """(score in [-1, 1], the sentiment words found, in order)."""
    lex = LEXICON if not extra else {**LEXICON, **extra}
    words = tokens(text)
    total = 0.0
    found = []
    for i, w in enumerate(words):
        v = lex.get(w)
        if v is None:
            continue
        if i > 0 and words[i - 1] in INTENSIFIERS:
            v *= INTENSIFIERS[words[i - 1]]
        window = words[max(0, i - 3) : i]
        if any(p in NEGATORS or p.endswith("n't") for p in window):
            v *= _NEGATION_DAMPING
        total += v
        found.append(w)
    if not found:
        return 0.0, found
    return total / math.sqrt(total * total + _ALPHA), found


def label(s: float, threshold: float) -> str:
    if s >= threshold:
        return "positive"
    if s <= -threshold:
        return "negative"
    return "neutral"
