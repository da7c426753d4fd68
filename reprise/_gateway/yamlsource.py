"""YAML with line numbers: a config reader whose every refusal names the key path and line.

`yaml.safe_load` gives plain dicts and lists that have forgotten where each value
was written, so a check made after loading can only say what is wrong, not
where. `YamlReader.document` builds `Map`s and `Seq`s that remember the line
of every value instead, and the typed getters (`string`, `number`, ...) fail
with `ConfigError("<source>: apis[0].path: line 12: ...")`. On the way it
refuses repeated keys and expands `${VAR}` and `${VAR:-default}` from the
environment in string values (`$${` is a literal `${`); an expanded value is
an `Expanded` string, which a numeric or true/false getter parses.

A reader for a particular file subclasses `YamlReader` and adds its sections.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from reprise._exceptions import ConfigError

__all__ = ["Expanded", "Map", "Seq", "YamlReader"]


class Map(dict[str, Any]):
    """A YAML mapping that remembers its line and the line of each value."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}


class Seq(list[Any]):
    """A YAML sequence that remembers its line and the line of each item."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


class Expanded(str):
    """A string that `${VAR}` expansion made.

    It stays a string wherever a string is expected (a key "0123" is not the
    number 83), and a numeric or boolean setting parses it, as it would a
    command-line option.
    """

    __slots__ = ()


def _coerce(value: Any, parse: Callable[[str], Any]) -> Any:
    if not isinstance(value, Expanded):
        return value
    try:
        return parse(value.strip())
    except ValueError:
        return value


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(text)
    return text.lower() == "true"


_ENV = re.compile(r"\$(\$\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_STR_TAG = "tag:yaml.org,2002:str"


def _content_line(node: yaml.Node) -> int:
    """The 1-based line a node's content starts on (a block scalar starts after its `|`)."""
    block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
    return node.start_mark.line + (2 if block else 1)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class YamlReader:
    """Reads YAML into `Map`s, `Seq`s and typed values, failing with key path and line."""

    def __init__(self, source: str, environ: Mapping[str, str] = os.environ) -> None:
        self.source = source
        self.environ = environ

    def fail(self, path: str, line: int, message: str) -> ConfigError:
        where = f"{path}: " if path else ""
        return ConfigError(f"{self.source}: {where}line {line}: {message}")

    # -- the document

    def document(self, text: str) -> Map:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = self._build(node, loader, "") if node is not None else Map(1)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise self.fail("", line, f"invalid YAML: {exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.source}: invalid YAML: {exc}") from None
        finally:
            loader.dispose()
        if not isinstance(data, Map):
            raise self.fail("", 1, "the config must be a mapping (backends:, apis:, ...)")
        return data

    def _build(self, node: yaml.Node, loader: yaml.SafeLoader, path: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            self._check_duplicates(node, path)
            loader.flatten_mapping(node)  # merge keys (`<<: *x`) first, own keys override
            mapping = Map(node.start_mark.line + 1)
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node)
                if not isinstance(key, str):
                    line = key_node.start_mark.line + 1
                    raise self.fail(path, line, f"keys must be strings, not {key!r}")
                mapping[key] = self._build(value_node, loader, _join(path, key))
                mapping.lines[key] = _content_line(value_node)
            return mapping
        if isinstance(node, yaml.SequenceNode):
            sequence = Seq(node.start_mark.line + 1)
            for i, item in enumerate(node.value):
                sequence.append(self._build(item, loader, f"{path}[{i}]"))
                sequence.lines.append(_content_line(item))
            return sequence
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG and "$" in node.value:
            return self._expanded(node, path)
        return loader.construct_object(node, deep=True)

    def _check_duplicates(self, node: yaml.MappingNode, path: str) -> None:
        """YAML lets a repeated key silently win; in a config that hides a mistake."""
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    line = key_node.start_mark.line + 1
                    raise self.fail(_join(path, key_node.value), line, "duplicate key")
                seen.add(key_node.value)

    def _expanded(self, node: yaml.ScalarNode, path: str) -> Expanded:
        first = _content_line(node)

        def replace(match: re.Match[str]) -> str:
            if match.group(1):
                return "${"
            name, default = match.group(2), match.group(3)
            value = self.environ.get(name)
            if value is not None:
                return value
            if default is not None:
                return default
            line = first + node.value.count("\n", 0, match.start())
            raise self.fail(
                path,
                line,
                f"environment variable {name} is not set (write ${{{name}:-default}} "
                "to give a default)",
            )

        return Expanded(_ENV.sub(replace, node.value))

    # -- typed values

    def mapping(self, value: Any, path: str, line: int) -> Map:
        if not isinstance(value, Map):
            raise self.fail(path, line, f"must be a mapping, not {_kind(value)}")
        return value

    def keys(
        self, m: Map, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> None:
        for key in m:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(
                    _join(path, key),
                    m.lines[key],
                    f"unknown key ({hint}allowed: {', '.join(allowed)})",
                )
        for key in required:
            if key not in m:
                raise self.fail(path, m.line, f"missing required key {key!r}")

    def string(self, m: Map, key: str, path: str, default: str | None = None) -> str:
        value = m.get(key, default)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # `model: 3` or a numeric header value
        if not isinstance(value, str) or not value.strip():
            raise self.fail(
                _join(path, key), m.lines.get(key, m.line), "must be a non-empty string"
            )
        return value.strip()

    def number(self, m: Map, key: str, path: str, default: float) -> float:
        value = _coerce(m.get(key, default), float)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(_join(path, key), m.lines[key], "must be a positive number")
        return float(value)

    def integer(self, m: Map, key: str, path: str, default: int) -> int:
        value = _coerce(m.get(key, default), int)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(_join(path, key), m.lines[key], "must be a positive integer")
        return value

    def boolean(self, m: Map, key: str, path: str, default: bool) -> bool:
        value = _coerce(m.get(key, default), _parse_bool)
        if not isinstance(value, bool):
            raise self.fail(_join(path, key), m.lines[key], "must be true or false")
        return value


def _kind(value: Any) -> str:
    # The type only: the value may be a key written where a mapping belongs.
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, (int, float)) else type(value).__name__
