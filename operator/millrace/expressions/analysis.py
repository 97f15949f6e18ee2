"""Static analysis of expressions, in pure Python (no V8).

A small JavaScript tokenizer is enough to answer the engine's questions
("which step results, variables and resources does this expression use?")
without being fooled by strings, comments, regular expressions or template
text. It is lenient: an unterminated string or comment simply ends the
token stream; syntax is judged by V8 in `Sandbox.check`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

TokenKind = Literal["ident", "num", "str", "template", "regex", "punct"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str


# Identifier characters: ASCII letters, `_`, `$` (and digits after the first), or any character from
# U+0080 to U+FFFF, or (after the first) a word character above. The range is written as a negated
# class: spelled [\u0080-\uffff], it costs the regex compiler some 7 ms at every start.
_NON_ASCII_BMP = r"[^\x00-\x7f\U00010000-\U0010ffff]"
_IDENT = re.compile(rf"(?:[A-Za-z_$]|{_NON_ASCII_BMP})(?:[\w$]|{_NON_ASCII_BMP})*")
_NUMBER = re.compile(
    r"(?:0[xXoObB][\da-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)n?"
)
_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"\?\.(?!\d)|\.\.\.|=>|[^\s\w$]")
_REGEX_FLAGS = re.compile(r"[a-z]*")

# After these a `/` starts a regular expression, not a division.
_REGEX_KEYWORDS = frozenset(
    "return typeof instanceof in of new delete void throw case do else yield await".split()
)

# Leading ES module imports of the Windmill client: old flows begin their
# expressions with them, and they mean nothing inside a function body.
_WINDMILL_IMPORT = re.compile(
    r"""\s*import\b[^'";]*?\bfrom\s*(['"])windmill[\w@.\-/]*\1\s*;?"""
)


def strip_windmill_imports(expr: str) -> str:
    """Remove leading `import {...} from 'windmill@1-1'` lines; trim the rest."""
    while match := _WINDMILL_IMPORT.match(expr):
        expr = expr[match.end() :]
    return expr.strip()


def _scan_string(src: str, start: int) -> int:
    """Index just past the closing quote of the string at `start`."""
    quote, i = src[start], start + 1
    while i < len(src):
        ch = src[i]
        if ch == "\\":
            i += 2
        elif ch == quote or ch == "\n":
            return i + 1
        else:
            i += 1
    return len(src)


def _scan_template(src: str, start: int) -> tuple[int, bool]:
    """End of the template chunk at `start`, and whether it opens a `${`."""
    i = start + 1
    while i < len(src):
        ch = src[i]
        if ch == "\\":
            i += 2
        elif ch == "`":
            return i + 1, False
        elif src.startswith("${", i):
            return i + 2, True
        else:
            i += 1
    return len(src), False


def _scan_regex(src: str, start: int) -> int:
    i, in_class = start + 1, False
    while i < len(src) and src[i] != "\n":
        ch = src[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "/" and not in_class:
            match = _REGEX_FLAGS.match(src, i + 1)
            return match.end() if match else i + 1
        i += 1
    return len(src)


def _regex_allowed(previous: Token | None) -> bool:
    if previous is None:
        return True
    if previous.kind == "ident":
        return previous.text in _REGEX_KEYWORDS
    if previous.kind == "punct":
        return previous.text not in (")", "]", "}")
    return False


def tokenize(src: str) -> Iterator[Token]:
    """Yield the significant tokens of `src` (comments and spaces dropped).

    A template literal yields one `template` token per text chunk; the
    expressions inside `${...}` are tokenized normally in between.
    """
    i, previous = 0, None
    braces: list[bool] = []  # per open `{`: True when it opened a `${`
    n = len(src)
    while i < n:
        if match := _SPACE.match(src, i):
            i = match.end()
            continue
        ch = src[i]
        two = src[i : i + 2]
        if two == "//":
            end = src.find("\n", i)
            i = n if end < 0 else end
            continue
        if two == "/*":
            end = src.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch in "'\"":
            end = _scan_string(src, i)
            token = Token("str", src[i:end])
        elif ch == "`" or (ch == "}" and braces and braces[-1]):
            if ch == "}":
                braces.pop()
            end, opens = _scan_template(src, i)
            if opens:
                braces.append(True)
            token = Token("template", src[i:end])
        elif ch == "/" and _regex_allowed(previous):
            end = _scan_regex(src, i)
            token = Token("regex", src[i:end])
        elif match := _IDENT.match(src, i):
            end, token = match.end(), Token("ident", match.group())
        elif match := _NUMBER.match(src, i):
            end, token = match.end(), Token("num", match.group())
        else:
            match = _PUNCT.match(src, i)
            end = match.end() if match else i + 1
            token = Token("punct", src[i:end])
            if token.text == "{":
                braces.append(False)
            elif token.text == "}" and braces:
                braces.pop()
        yield token
        previous, i = token, end


def _literal(token: Token) -> str | None:
    """The value of a plain string or substitution-free template literal."""
    text = token.text
    if len(text) < 2 or "\\" in text:
        return None  # escapes: too rare to be worth decoding, treat as dynamic
    if token.kind == "str" and text[0] == text[-1]:
        return text[1:-1]
    if token.kind == "template" and text[0] == text[-1] == "`":
        return text[1:-1]
    return None


def _punct(tokens: Sequence[Token], i: int) -> str | None:
    if 0 <= i < len(tokens) and tokens[i].kind == "punct":
        return tokens[i].text
    return None


def _is_global_use(tokens: Sequence[Token], i: int) -> bool:
    """Whether the identifier at `i` reads a variable (not a property or key)."""
    before, after = _punct(tokens, i - 1), _punct(tokens, i + 1)
    if before in (".", "?."):
        return False  # `x.results`
    return not (before in ("{", ",") and after == ":")  # `{results: 1}`


def _member_key(tokens: Sequence[Token], i: int) -> str | None:
    """Static key of the member access after the identifier at `i`, if any."""
    i += 1
    if _punct(tokens, i) in (".", "?.") and i + 1 < len(tokens) and tokens[i + 1].kind == "ident":
        return tokens[i + 1].text
    if _punct(tokens, i) == "?.":
        i += 1
    if _punct(tokens, i) == "[" and _punct(tokens, i + 2) == "]":
        return _literal(tokens[i + 1])
    return None


def _call_arg(tokens: Sequence[Token], i: int) -> str | None:
    """Literal single argument of the call `name(<literal>)` at `i`."""
    if _punct(tokens, i + 1) == "(" and _punct(tokens, i + 3) == ")":
        return _literal(tokens[i + 2])
    return None


def _references(
    tokens: Sequence[Token], name: str, key: Callable[[Sequence[Token], int], str | None]
) -> frozenset[str] | None:
    found: set[str] = set()
    for i, token in enumerate(tokens):
        if token.kind != "ident" or token.text != name or not _is_global_use(tokens, i):
            continue
        value = key(tokens, i)
        if value is None:
            return None
        found.add(value)
    return frozenset(found)


@lru_cache(maxsize=4096)
def _tokens(expr: str) -> tuple[Token, ...]:
    return tuple(tokenize(strip_windmill_imports(expr)))


def referenced_results(expr: str) -> frozenset[str] | None:
    """Step ids read as `results.<id>`, `results?.<id>` or `results["<id>"]`.

    None means the access is dynamic (`results[x]`, `Object.keys(results)`)
    and every result may be read.
    """
    return _references(_tokens(expr), "results", _member_key)


def referenced_variables(expr: str) -> frozenset[str] | None:
    """Paths passed as literals to `variable('...')`; None if any is dynamic."""
    return _references(_tokens(expr), "variable", _call_arg)


def referenced_resources(expr: str) -> frozenset[str] | None:
    """Paths passed as literals to `resource('...')`; None if any is dynamic."""
    return _references(_tokens(expr), "resource", _call_arg)


def has_return(expr: str) -> bool:
    """Whether a `return` keyword appears outside strings and comments."""
    return any(t.kind == "ident" and t.text == "return" for t in _tokens(expr))
