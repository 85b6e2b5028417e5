"""Canonical attribute text (docs/term-language.md): equal text means the same node.

Pairs sorted by key and joined by ", "; ints in decimal, floats as Python ``repr``, strings
double-quoted with backslash escapes, lists ``[a, b]``, references ``%name``.
"""

from __future__ import annotations

import json
import math

from lark import Token, Tree

from bwsk.errors import TermError

_MAX_LIST_DEPTH = 64


class AttrError(ValueError):
    """A bad attribute; the parser re-raises it with a position (``token``)."""

    def __init__(self, message: str, token: Token):
        super().__init__(message)
        self.token = token


def canonical_value(tree: Tree, depth: int = 0) -> str:
    """The canonical text of one attribute value tree (lists nest at most 64 deep)."""
    if depth > _MAX_LIST_DEPTH:
        raise TermError(f"attribute list nested deeper than {_MAX_LIST_DEPTH}")
    kind = tree.data
    if kind == "list":
        items = [canonical_value(item, depth + 1) for item in tree.children if item is not None]
        return "[" + ", ".join(items) + "]"
    token = tree.children[0]
    if kind == "int":
        return str(int(token))
    if kind == "float":
        number = float(token)  # an overflow like 1e999 is written as the string "inf"
        return repr(number) if math.isfinite(number) else json.dumps(repr(number))
    if kind == "string":
        try:
            decoded = json.loads(token)
        except ValueError:
            raise AttrError(f"bad escape in string {token}", token) from None
        return json.dumps(decoded, ensure_ascii=False)
    return str(token)  # a bare word or a %reference


def canonical_attrs(attr_trees) -> str:
    """``k1=v1, k2=v2`` sorted by key; a repeated key is an error."""
    pairs: dict[str, str] = {}
    for attr in attr_trees:
        if attr is None:  # `name[]`
            continue
        key, value = attr.children
        if str(key) in pairs:
            raise AttrError(f"attribute {key!s} given twice", key)
        pairs[str(key)] = canonical_value(value)
    return ", ".join(f"{key}={pairs[key]}" for key in sorted(pairs))
