"""Making untrusted text safe for the places it is shown."""

from __future__ import annotations

import re

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")

_INVISIBLE = (
    "\u061c\u180e"  # Arabic letter mark, Mongolian vowel separator
    "\u200b-\u200f"  # zero-width space, (non-)joiner, left-to-right and right-to-left marks
    "\u2028\u2029"  # line and paragraph separators
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\ufeff"  # zero-width no-break space (BOM)
)
UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")
"""Characters that can drive a terminal or hide or reorder text: C0 and C1 controls
(except tab and newline), bidi controls and zero-width characters."""
_UNSAFE_OR_BREAK = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")


def escape_markdown(text: str) -> str:
    """Untrusted text made inert for the Temporal UI's markdown: one line, no links, no markup."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(text.split()))


def strip_unsafe(text: str | None, *, single_line: bool = False) -> str:
    """Untrusted text without :data:`UNSAFE` characters, for people to read.

    With ``single_line``, runs of whitespace (newlines too) become one space, so
    the text cannot start a line of its own.
    """
    if not text:
        return ""
    if single_line:
        return " ".join(UNSAFE.sub("", " ".join(text.split())).split())
    return UNSAFE.sub("", text.replace("\r\n", "\n"))


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    if named := _NAMED.get(match.group()):
        return named
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_unsafe(text: str, *, keep_newlines: bool = False) -> str:
    """Untrusted text with each unsafe character written as a visible escape (``\\x1b``).

    For logs, where what was sent matters: nothing is lost, nothing acts on the
    terminal. Tab and newline are escaped too unless ``keep_newlines``.
    """
    pattern = UNSAFE if keep_newlines else _UNSAFE_OR_BREAK
    return pattern.sub(_escape, text)
