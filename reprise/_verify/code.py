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
_CODE_WORD = re.compile(
    # a dotted or namespaced name, perhaps called: os.path.join, std::vector, a->b, x.sort()
    rf"{_NAME}(?:(?:\.|::|->){_NAME})+(?:\([^()\n]*\))?"
    # a call or an index: len(x), print("hi"), a[0], d['k']
    rf"|{_NAME}\([^()\n]*\)|{_NAME}\[[^\[\]\n]*\]"
    # a snake_case name: max_length, __init__
    r"|\b_*[A-Za-z][A-Za-z0-9]*_\w+"
)
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
_MAYBE = re.compile(r"[(\[_=<>]|\.[A-Za-z_$]|::")


def operands(text: str) -> frozenset[str]:
    """The code-like words of `text`: lower-cased (a sentence's first word, a domain name
    in capitals), whitespace removed, an empty call's "()" dropped."""
    if not _MAYBE.search(text):
        return frozenset()
    text = text.replace("`", " ")
    found = {
        _SPACE.sub("", m.group()).removesuffix("()").lower()
        for m in _CODE_WORD.finditer(text)
        if not _NOT_CODE.fullmatch(m.group())
    }
    found.update(m.group(1) for m in _OPERATOR.finditer(text))
    return frozenset(found)
