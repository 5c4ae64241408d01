"""How much of an untrusted request is kept, and the cheap helpers that enforce it.

Every cap is applied while the payload is parsed or right after, before any
work proportional to the product of two sizes (labels × alerts) is done, so
the cost of a request is linear in its body and the body is at most
``INCIDENT_WEBHOOK_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_MAP_ENTRIES = 256
"""Entries accepted per label or annotation map of a request; more is refused with 422 at
parse time."""
MAX_LABELS = 64
"""Labels kept per alert for routing: the alert's own and the notification's common labels
are merged up to this many (the names routing rules use first), never in full."""
MAX_LABEL_NAME = 100
"""Characters kept of a label name."""
MAX_LABEL_VALUE = 500
"""Characters kept of a label value used for routing."""
EVENT_LABELS = 16
"""Labels carried by the alert signal to the incident (routing sees up to :data:`MAX_LABELS`)."""
EVENT_LABEL_BYTES = 2048
"""UTF-8 bytes of names and values carried by one alert signal: every signal is kept in the
incident's history, so a large label set must not be copied into each one."""
EVENT_LABEL_VALUE = 200
"""Characters kept of a label value carried by the alert signal."""

MAX_DETAILS_DEPTH = 6
"""Nesting kept of PagerDuty ``custom_details``; deeper values become ``"…"``."""
MAX_DETAILS_ITEMS = 50
"""Entries kept per object or array of ``custom_details``."""
MAX_DETAILS_NODES = 500
"""Values kept of one ``custom_details`` in all."""
MAX_DETAILS_STRING = 1000
"""Characters kept of one string in ``custom_details``."""
_LARGEST_INT_BITS = 128

_LABEL_CONTROLS = {code: None for code in (*range(0x20), *range(0x7F, 0xA0))}
_TEXT_CONTROLS = {code: None for code in (*range(0x20), 0x7F) if chr(code) not in "\t\n"}
_ELIDED = "…"
_EMPTY: Mapping[str, str] = {}


def clean_label(text: str) -> str:
    """``text`` without control characters (C0, DEL, C1).

    Labels, the service and keys reach search attributes and logs; Postgres
    visibility refuses NUL, and the rest forge log lines and terminals.
    """
    return text.translate(_LABEL_CONTROLS)


def clean_text(text: str) -> str:
    """``text`` without control characters other than tab and newline."""
    return text.translate(_TEXT_CONTROLS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + _ELIDED


def routing_labels(
    own: Mapping[str, str], shared: Mapping[str, str] = _EMPTY, *, first: Iterable[str] = ()
) -> dict[str, str]:
    """The labels routing sees, at most :data:`MAX_LABELS`: ``own`` win over ``shared``.

    The names in ``first`` (those routing rules look at) are taken before the
    rest. Names and values are cleaned and cut; the cost is bounded by the cap
    and the maps' own size, whatever their product.
    """
    merged: dict[str, str] = {}

    def keep(name: str, value: str) -> None:
        key = _cut(clean_label(name), MAX_LABEL_NAME)
        if key and key not in merged:
            merged[key] = _cut(clean_label(value), MAX_LABEL_VALUE)

    for name in first:
        value = own.get(name, shared.get(name))
        if value is not None and len(merged) < MAX_LABELS:
            keep(name, value)
    for labels in (own, shared):
        for name, value in labels.items():
            if len(merged) >= MAX_LABELS:
                return merged
            keep(name, value)
    return merged


def event_labels(labels: Mapping[str, str], first: Iterable[str] = ()) -> dict[str, str]:
    """The few labels an alert signal carries, named ones (``first``) before the rest.

    At most :data:`EVENT_LABELS` entries and :data:`EVENT_LABEL_BYTES` bytes.
    """
    order = [name for name in dict.fromkeys(first) if name in labels]
    order += sorted(name for name in labels if name not in order)
    kept: dict[str, str] = {}
    budget = EVENT_LABEL_BYTES
    for name in order:
        if len(kept) >= EVENT_LABELS:
            break
        value = _cut(labels[name], EVENT_LABEL_VALUE)
        cost = len(name.encode("utf-8", "surrogatepass")) + len(
            value.encode("utf-8", "surrogatepass")
        )
        if cost <= budget:
            kept[name] = value
            budget -= cost
    return kept


def compact_details(value: Any) -> Any:
    """A copy of parsed JSON cut to :data:`MAX_DETAILS_DEPTH`, items, nodes and string sizes.

    Only the kept part is visited, so the cost is bounded by the caps whatever
    was sent. Cut parts become ``"…"``; a huge integer becomes its approximate
    size as text.
    """
    nodes = [MAX_DETAILS_NODES]

    def walk(item: Any, depth: int) -> Any:
        nodes[0] -= 1
        if isinstance(item, str):
            return _cut(item, MAX_DETAILS_STRING)
        if isinstance(item, bool) or item is None or isinstance(item, float):
            return item
        if isinstance(item, int):
            return item if item.bit_length() <= _LARGEST_INT_BITS else "<large number>"
        if depth >= MAX_DETAILS_DEPTH or nodes[0] <= 0:
            return _ELIDED
        if isinstance(item, dict):
            kept: dict[str, Any] = {}
            for index, (key, child) in enumerate(item.items()):
                if index >= MAX_DETAILS_ITEMS or nodes[0] <= 0:
                    kept[_ELIDED] = f"{len(item) - index} more"
                    break
                kept[_cut(str(key), MAX_LABEL_NAME)] = walk(child, depth + 1)
            return kept
        if isinstance(item, list):
            items: list[Any] = []
            for index, child in enumerate(item):
                if index >= MAX_DETAILS_ITEMS or nodes[0] <= 0:
                    items.append(f"{_ELIDED} {len(item) - index} more")
                    break
                items.append(walk(child, depth + 1))
            return items
        return _cut(str(item), MAX_DETAILS_STRING)

    return walk(value, 0)


def compact_json(value: Any, limit: int) -> str:
    """Compact JSON text of ``value``, cut at ``limit`` characters.

    The encoder is consumed lazily and stopped at the limit, so the text is
    never built in full (``json.dumps(indent=2)`` of deep input is quadratic).
    """
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)
    parts: list[str] = []
    size = 0
    for chunk in encoder.iterencode(value):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return "".join(parts)[: limit - 1] + _ELIDED
    return "".join(parts)


def checked_map(labels: dict[str, str]) -> dict[str, str]:
    """Parse-time check: at most :data:`MAX_MAP_ENTRIES` entries."""
    if len(labels) > MAX_MAP_ENTRIES:
        raise ValueError(f"at most {MAX_MAP_ENTRIES} entries are accepted (got {len(labels)})")
    return labels


LabelMap = Annotated[dict[str, str], AfterValidator(checked_map)]
"""A label or annotation map, refused with 422 beyond :data:`MAX_MAP_ENTRIES` entries."""
