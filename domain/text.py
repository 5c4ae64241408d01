"""Making untrusted text safe for the places it is shown."""

from __future__ import annotations

import re

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def escape_markdown(text: str) -> str:
    """Untrusted text made inert for the Temporal UI's markdown: one line, no links, no markup."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", " ".join(text.split()))
