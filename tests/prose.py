"""Reading the facts of generated prose rather than its wording: the names and numbers one sentence states, in
order, whatever the words between them. A test that pins a fact with `states` passes on a rewording and fails on
a wrong number, a wrong sign or a missing class.

    states(text, "contempt", 0.1, "disgust", 0.3)   # one sentence names contempt, then 0.100, disgust, 0.300
"""

from __future__ import annotations

import re

# a number as prose writes it: 1,600 / 0.900 / +3.0 / −6.0 (U+2212) / -6.0; not the digits inside a word
NUMBER = re.compile(r"(?<![\w.])[+\-−]?\d[\d,]*(?:\.\d+)?(?![\d])")
SIGNED = re.compile(r"[+-]\d[\d,]*(?:\.\d+)?")  # a fact written "+3.0" or "-6.0" must carry that sign


def plain(text: str) -> str:
    """The text without Markdown or LaTeX markup: `x` and \\emph{x} are x, \\% is %, $\\pm$ is ±, \\, a space, the
    minus sign a hyphen; whitespace runs are one space."""
    text = re.sub(r"\\(?:emph|textit|textbf)\{([^{}]*)\}", r"\1", text)
    for a, b in (("\\,", " "), ("\\%", "%"), ("\\pm", "±"), ("\\times", "×"), ("$", ""), ("`", ""),
                 ("\u2212", "-"), ("~", " ")):
        text = text.replace(a, b)
    return " ".join(text.split())


def value(token: str) -> float:
    return float(token.replace(",", "").replace("\u2212", "-"))


def sentences(text: str) -> list[str]:
    """The sentences of `text` (plain), split after . ! ? or a new line; a decimal point does not split."""
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", plain(text.replace("\n", " \n "))) if s.strip()]


def _in_order(sentence: str, facts) -> bool:
    pos = 0
    for fact in facts:
        if isinstance(fact, str) and SIGNED.fullmatch(fact):  # "+3.0": a number with this sign and value
            for m in NUMBER.finditer(sentence, pos):
                if m.group()[0] == fact[0] and abs(value(m.group()[1:]) - value(fact[1:])) < 1e-9:
                    pos = m.end()
                    break
            else:
                return False
        elif isinstance(fact, str):
            i = sentence.find(fact, pos)
            if i < 0:
                return False
            pos = i + len(fact)
        else:
            for m in NUMBER.finditer(sentence, pos):
                if abs(value(m.group()) - fact) < 1e-9:
                    pos = m.end()
                    break
            else:
                return False
    return True


def stating(text: str, *facts: str | float) -> list[str]:
    """The sentences of `text` (plain) that hold every fact in this order: a str is found as it is, a number as
    any number of the same value (0.9 matches 0.900, 1600 matches 1,600, -6 matches −6.0; +3 does not match -3,
    but matches an unsigned 3), and a signed str ("+3.0") as a number of that sign and value only."""
    return [s for s in sentences(text) if _in_order(s, facts)]


def states(text: str, *facts: str | float) -> bool:
    """Whether one sentence of `text` holds every fact in this order (`stating`)."""
    return bool(stating(text, *facts))


def numbers(text: str) -> list[float]:
    """Every number of `text`, in order."""
    return [value(m.group()) for m in NUMBER.finditer(plain(text))]
