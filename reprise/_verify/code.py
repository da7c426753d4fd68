"""The code a prompt quotes, as exact operands.

"What does `a.sort()` return?" and "What does `sorted(a)` return?" are a few
hundredths apart in embedding space and share every plain word the other checks
read, yet they ask about different code; so do "is x <= y" and "is x < y". Like
arithmetic's operands, code must match exactly: `operands(text)` lists the
code-like words of a prompt (dotted names, calls, indexing, snake_case names,
comparison and assignment operators), whitespace removed, and two prompts that
both quote code must quote the same.

A prompt that quotes no code says it in words ("the sort method of a list"), so
one side without code is no conflict: the learned score weighs that.
"""

from __future__ import annotations

import re

_NAME = r"(?<![\w$])[A-Za-z_$][\w$]*"
# A name, once, then what makes it code (one scan of each name, whichever follows):
# dotted or namespaced, perhaps called (os.path.join, std::vector, a->b, x.sort()),
# a call (len(x), print("hi")) or an index (a[0], d['k']).
_CODE_WORD = re.compile(
    rf"{_NAME}(?:(?:(?:\.|::|->){_NAME})+(?:\([^()\n]*\))?|\([^()\n]*\)|\[[^\[\]\n]*\])"
)
_SNAKE_CASE = re.compile(r"\b_*[A-Za-z][A-Za-z0-9]*_\w+")  # max_length, __init__
# A comparison or assignment between operands: "x <= y", "a=b", "i != j". Arithmetic
# signs are left out: in prose "-" and "/" join words ("well-known", "and/or").
_OPERATOR = re.compile(
    r"(?<=[\w)\]'\"])\s*(===|!==|==|!=|<=|>=|[+\-*/%]=|=>|<<|>>|=|<|>)\s*(?=[\w(\['\"-])"
)
# Not attribute access: abbreviations ("e.g", "U.S", "Ph.D") and the names of sites and
# products ("Node.js", "Hugging Face.js", "musical.ly"), which the names check reads.
_NOT_CODE = re.compile(
    r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}|.*\.(?:js|ts|net|com|org|io|ai|ly|co|dev|app)",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")
# Every operand has one of these; most prompts have none, and this is one fast scan.
_MAYBE = re.compile(r"[\w$][(\[]|[_=<>]|\.[A-Za-z_$]|::")


def operands(text: str) -> frozenset[str]:
    """The code-like words of `text`: lower-cased (a sentence's first word, a domain name
    in capitals), whitespace removed, an empty call's "()" dropped."""
    if not _MAYBE.search(text):
        return frozenset()
    text = text.replace("`", " ")
    words = [m.group() for m in _CODE_WORD.finditer(text)]
    if "_" in text:
        words += _SNAKE_CASE.findall(text)
    found = {
        _SPACE.sub("", word).removesuffix("()").lower()
        for word in words
        if not _NOT_CODE.fullmatch(word)
    }
    if "=" in text or "<" in text or ">" in text:
        found.update(_OPERATOR.findall(text))
    return frozenset(found)
