"""Control characters made visible, so text from outside (a broker's symbol, an error body)
cannot forge a line of output, hide part of one or reorder it on screen."""

from __future__ import annotations

import re

# DEL, C1 controls, the Unicode line and paragraph separators, and the bidi embeddings,
# overrides and isolates; then with the C0 controls, all of them or all but the newline.
_OTHERS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_ANY = re.compile(f"[\x00-\x1f{_OTHERS}]")
_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every control character written out: "\\n", "\\x1b", "\\u202e"."""
    return _ANY.sub(_visible, text)


def printable_lines(text: str) -> str:
    """``printable`` but for the line breaks of a text that has several lines (a traceback)."""
    return _BUT_NEWLINE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
