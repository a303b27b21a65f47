"""Personal data, masked for people whose role may not read it.

A request's payload is shown with every text and coordinate masked, keeping only its shape,
the first and last character and numbers such as quantities, so an auditor can see that a
field was filled without learning what it says.
"""

from __future__ import annotations

from typing import Any

MASK = "•"


def mask_text(text: str) -> str:
    if len(text) <= 2:
        return MASK * 2
    return f"{text[0]}{MASK * min(len(text) - 2, 8)}{text[-1]}"


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, float):
        return MASK * 4          # coordinates locate a home
    return value                 # counts, flags, None


def flatten(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """``[("patient.name", "S••••h"), ("items.0.quantity", 2), ...]`` for a plain table."""
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.extend(flatten(item, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            out.extend(flatten(item, f"{path}.{index}" if path else str(index)))
        return out
    return [(path, value)]
