"""Loading the Lark grammar and turning Lark's exceptions into ``TermSyntaxError``.

The grammar ships inside the package (CMake installs it to ``bwsk/grammar/``); in a source
checkout the repository's ``grammar/`` is the one edited, so it wins.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from bwsk.errors import TermSyntaxError

# Terminal names as a user would type them, for "expected ..." messages.
_SPELLING = {"NAME": "a name", "REF": "%reference", "INT": "an integer",
             "FLOAT": "a number", "STRING": "a string", "$END": "end of input"}
_MAX_EXPECTED = 6
_TERM_START = frozenset({"LET", "BACKSLASH", "Λ", "LESSTHAN", "HASH", "LPAR", "NAME", "REF",
                         "S", "K", "I", "B", "C", "W"})
_COMMENT = re.compile(r"--[^\n]*")


def grammar_text() -> str:
    """The text of bwsk.lark: the source tree's when running from one (an editable install's
    packaged copy is only refreshed by a rebuild), else the copy installed with the package."""
    source_tree = Path(__file__).resolve().parents[2] / "grammar" / "bwsk.lark"
    if source_tree.is_file():
        return source_tree.read_text(encoding="utf-8")
    return (resources.files("bwsk") / "grammar" / "bwsk.lark").read_text(encoding="utf-8")


class FastLexer(Lexer):
    """Lark's basic lexer, rebuilt from the grammar's own terminals as one master regex.

    Same tokens (keywords are names that spell a reserved word, as in Lark), but about five
    times faster, and tokens carry only their offset: positions are computed on error.
    """

    def __init__(self, conf):
        regexps = sorted((t for t in conf.terminals if t.pattern.type == "re"),
                         key=lambda t: (-t.priority, -t.pattern.max_width, t.name))
        strings = sorted((t for t in conf.terminals if t.pattern.type == "str"),
                         key=lambda t: -len(t.pattern.value))
        name_re = next(t for t in regexps if t.name == "NAME").pattern.to_regexp()
        self.keywords = {t.pattern.value: t.name for t in strings
                         if re.fullmatch(name_re, t.pattern.value)}
        alternatives = [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in regexps]
        alternatives += [f"(?P<{t.name}>{re.escape(t.pattern.value)})" for t in strings
                         if t.name not in self.keywords.values()]
        self.master = re.compile("|".join(alternatives))
        self.ignore = frozenset(conf.ignore)

    def lex(self, text: str):
        match, keywords, ignore = self.master.match, self.keywords, self.ignore
        pos, end = 0, len(text)
        while pos < end:
            m = match(text, pos)
            if m is None:
                line, column = position(text, pos)
                raise UnexpectedCharacters(text, pos, line, column)
            kind = m.lastgroup
            if kind not in ignore:
                value = m.group()
                if kind == "NAME":
                    kind = keywords.get(value, kind)
                yield Token(kind, value, pos)
            pos = m.end()


def position(text: str, offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of a character offset."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser; built once per process (building the tables takes ~0.1 s)."""
    return Lark(grammar_text(), parser="lalr", lexer=FastLexer, start="start")


def _describe(terminal: str) -> str:
    if terminal == "a term":
        return terminal
    if terminal in _SPELLING:
        return _SPELLING[terminal]
    try:
        pattern = lark_parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"'{pattern.value}'" if pattern.type == "str" else terminal


def _expected(names) -> str:
    names = set(names)
    starters = names & _TERM_START
    if len(starters) > len(_TERM_START) // 2:  # "a term" instead of a dozen token kinds
        names = (names - _TERM_START) | {"a term"}
    shown = sorted({_describe(n) for n in names})
    if not shown:
        return ""
    more = ", ..." if len(shown) > _MAX_EXPECTED else ""
    return "; expected " + ", ".join(shown[:_MAX_EXPECTED]) + more


def line_of(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def syntax_error(message: str, text: str, source: str, line: int, column: int) -> TermSyntaxError:
    return TermSyntaxError(message, source=source, line=line, column=column,
                           line_text=line_of(text, line))


def error_at(message: str, token: Token, text: str, source: str) -> TermSyntaxError:
    """A syntax error located at ``token``."""
    return syntax_error(message, text, source, *position(text, token.start_pos))


def convert(exc: UnexpectedInput, text: str, source: str) -> TermSyntaxError:
    """Lark's exception, rephrased for a user, with the offending line and a caret."""
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        message = f"unexpected character {char!r}"
        return syntax_error(message, text, source, exc.line, exc.column)
    if isinstance(exc, UnexpectedEOF) or (
            isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        line, column = position(text, len(text.rstrip()))  # just after the last character
        if not _COMMENT.sub("", text).strip():
            return syntax_error("empty term", text, source, 1, 1)
        return syntax_error(f"unexpected end of input{_expected(exc.expected)}", text, source,
                            line, column)
    if isinstance(exc, UnexpectedToken):
        message = f"unexpected {exc.token.value!r}{_expected(exc.expected)}"
        return error_at(message, exc.token, text, source)
    return syntax_error(str(exc).splitlines()[0], text, source, exc.line, exc.column)
