"""Reading YAML specs safely and fast, and failing in well under a second on hostile input.

* safe loading only, with libyaml's C parser where it is installed (``CSafeLoader``);
* YAML 1.2 booleans: only ``true``/``false``, so words such as ``on`` stay strings; and
  YAML 1.2 floats: ``1e-1`` and ``2e8`` are numbers, as ``0.1`` and ``2.0e+8`` are;
* a duplicate key in a mapping is an error (the second one would silently win);
* the document, once aliases are expanded, has at most ``MAX_NODES`` nodes and is nested at
  most ``MAX_DEPTH`` deep ("billion laughs" and 5,000-deep lists are refused);
* a spec file is a regular file of at most ``MAX_BYTES`` bytes.

Every problem is a :class:`~simarch.errors.SpecError` naming the line where it is known.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError, excerpt

MAX_BYTES = 64 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SpecLoader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader with YAML 1.2 booleans that refuses duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {excerpt(key)} (first at line {first.line + 1}): "
                        "a second value would silently replace the first", key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_SpecLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
# YAML 1.2 floats that YAML 1.1 reads as strings: an exponent without a dot or without a
# sign (``1e-1``, ``2e8``, ``5E+3``); tried after the built-in float and int patterns
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _check_events(text: str, source: str | None) -> None:
    """Refuse a document that expands past MAX_NODES values or MAX_DEPTH levels, streaming
    its parse events and stopping at the first excess (an alias counts as the whole of what
    it refers to)."""
    sizes: dict[str, int] = {}
    stack: list[list] = [[None, 0]]  # per open collection: its anchor, its size so far
    total = 0
    try:
        for ev in yaml.parse(text, Loader=_SpecLoader):
            if isinstance(ev, yaml.ScalarEvent):
                n = 1
                if ev.anchor:
                    sizes[ev.anchor] = 1
            elif isinstance(ev, yaml.AliasEvent):
                n = sizes.get(ev.anchor, 1)
            elif isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                stack.append([ev.anchor, 1])
                if len(stack) - 1 > MAX_DEPTH:
                    raise _too_big(ev, f"is nested more than {MAX_DEPTH} levels deep", source)
                continue
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                anchor, n = stack.pop()
                if anchor:
                    sizes[anchor] = n
            else:
                continue
            stack[-1][1] += n
            total += n
            if stack[-1][1] > MAX_NODES or total > 4 * MAX_NODES:
                raise _too_big(ev, f"expands to more than {MAX_NODES:,} values (aliases included)",
                               source)
    except yaml.YAMLError as e:
        raise _yaml_error(e, source) from None


def _too_big(event: yaml.Event, what: str, source: str | None) -> SpecError:
    return SpecError(f"the document {what} (line {event.start_mark.line + 1}); a spec is far "
                     "smaller", (), source)


def yaml_load(text: str, source: str | None = None) -> Any:
    """Parse YAML text with the spec loader; any problem is a :class:`SpecError`."""
    _check_events(text, source)
    loader = _SpecLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            raise _yaml_error(e, source) from None
        if node is None:
            return None
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as e:
            raise _yaml_error(e, source) from None
        except (ValueError, OverflowError, RecursionError, TypeError) as e:  # e.g. a 5,000-digit integer
            raise SpecError(f"unreadable value: {excerpt(str(e), 120, quote=False)}", (), source) from None
    finally:
        loader.dispose()


def _yaml_error(e: yaml.YAMLError, source: str | None) -> SpecError:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    kind = "broken YAML" if not isinstance(e, yaml.constructor.ConstructorError) else "bad YAML"
    return SpecError(f"{kind}: {where}{excerpt(problem, 200, quote=False)}", (), source)


def read_yaml(path: str | Path) -> dict:
    """Read a YAML spec file safely; a missing, special, huge, empty or broken file is a
    :class:`SpecError`."""
    p = Path(path)
    src = str(path)
    if not p.exists():
        raise SpecError("file does not exist", (), src)
    if p.is_dir():
        raise SpecError("is a directory, expected a YAML spec file", (), src)
    if not p.is_file():
        raise SpecError("is not a regular file (a device or a pipe?), expected a YAML spec file", (), src)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise SpecError(f"is larger than {MAX_BYTES // 2**20} MiB; a spec is far smaller", (), src)
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read the file ({excerpt(str(e), 120, quote=False)})", (), src) from None
    data = yaml_load(text, src)
    if data is None:
        raise SpecError("the file is empty: a spec is a YAML mapping with 'workload' and 'components'",
                        (), src)
    if not isinstance(data, dict):
        raise SpecError(
            f"a spec is a YAML mapping with 'workload' and 'components', got {type(data).__name__}",
            (), src)
    return data
