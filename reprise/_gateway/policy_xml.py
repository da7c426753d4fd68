"""The XML tree under the policy parser: nodes with their lines, and errors that name them.

Every refusal must point at the line the operator wrote, which `xml.etree`
does not keep, so the document is read with expat, the parser under it, into
plain `_Node`s that carry their line. DTDs are refused, so no entity can
expand or reach outside. `_Context` turns such a line into a `ConfigError`
naming the config key and the line in the config file. The checks here are on
a node's shape only (children, text); its attributes are `policy_attrs`'s.
Apart from `policies` so that the walk over the sections reads on its own, and
below `policy_attrs`, which needs `_Node` and `_Context` too.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from reprise._exceptions import ConfigError


@dataclass(slots=True)
class _Node:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def _read_xml(text: str) -> _Node:
    """Parse `text` into `_Node`s with their lines; `_XmlError(line, message)` if malformed."""
    parser = expat.ParserCreate()
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = _Node(tag, attrs, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text.append(data)

    def doctype(*args: Any) -> None:
        raise _XmlError(parser.CurrentLineNumber, "a DOCTYPE is not allowed in policies")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code]
        raise _XmlError(exc.lineno, f"not well-formed XML: {message}") from None
    return roots[0]


class _XmlError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Context:
    """Where the document sits, so every error names the config key and file line."""

    def __init__(self, where: str, line_offset: int, backends: Collection[str]) -> None:
        self.where = where
        self.line_offset = line_offset
        self.backends = backends

    def error(self, line: int, message: str, tag: str | None = None) -> ConfigError:
        element = f"<{tag}> " if tag else ""
        return ConfigError(f"{self.where}: {element}line {line + self.line_offset}: {message}")


def _check_no_children(node: _Node, ctx: _Context) -> None:
    if node.children:
        child = node.children[0]
        raise ctx.error(child.line, f"unsupported element <{child.tag}> in <{node.tag}>")
    _check_no_text(node, ctx)


def _check_no_text(node: _Node, ctx: _Context) -> None:
    # Stray text is most likely a policy pasted without its element.
    text = "".join(node.text).strip()
    if text:
        raise ctx.error(node.line, f"unexpected text {text[:40]!r}", node.tag)
