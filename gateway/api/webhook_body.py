"""Reading a webhook's body, and refusing what no provider sends, before anything parses it.

A webhook URL answers anyone, so the body is checked while it is still bytes: its size (the
declared ``Content-Length`` and, for a streamed body, as it is read), its encoding (JSON is
UTF-8, RFC 8259) and how deeply its arrays and objects nest (Python's JSON parser recurses
once per level: tens of thousands of ``[`` would exhaust the stack). Each refusal is an
:class:`BodyRefused` with the status, the stable code and the reason the rejection metric
counts it under.
"""

from __future__ import annotations

import re

from werkzeug.exceptions import RequestEntityTooLarge

#: a JSON string, escapes included (one way to match each character: no backtracking blow-up)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class BodyRefused(Exception):
    """:ivar reason: the ``reason`` label of ``gateway_webhooks_rejected_total``"""

    def __init__(self, status: int, code: str, message: str, reason: str):
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason


def read_body(request, max_bytes: int) -> bytes:
    """The raw body, read only up to one byte past ``max_bytes``.

    werkzeug refuses a larger ``Content-Length`` at once; a streamed (chunked) body it stops
    reading at the limit without a word, so one byte more is asked for: if it came, the body
    is too large. An oversized body is never held in memory.
    """
    encoding = (request.content_encoding or "identity").strip().lower()
    if encoding != "identity":
        raise BodyRefused(415, "unsupported_media_type", "Webhook bodies are accepted "
                          "unencoded (no Content-Encoding).", "encoded")
    request.max_content_length = max_bytes + 1
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raw = None
    if raw is None or len(raw) > max_bytes:
        raise BodyRefused(413, "payload_too_large", f"A webhook body may be at most "
                          f"{max_bytes} bytes.", "too_large")
    return raw


def check_body(raw: bytes, max_depth: int) -> None:
    """Refuse a body that is not UTF-8 or that nests deeper than ``max_depth``."""
    try:
        raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BodyRefused(400, "invalid_body_encoding",
                          "A webhook body must be UTF-8 encoded JSON.", "not_utf8") from None
    if nesting_depth(raw, stop_above=max_depth) > max_depth:
        raise BodyRefused(400, "body_too_deep", f"A webhook body may nest arrays and objects "
                          f"at most {max_depth} levels deep.", "too_deep")


def nesting_depth(raw: bytes, stop_above: int | None = None) -> int:
    """How deeply arrays and objects nest in JSON text, brackets inside strings left out.

    Counts without parsing (linear, no recursion); text that is not JSON gets a number all
    the same, and the parser refuses it later. With ``stop_above``, counting stops as soon
    as the depth passes it.
    """
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                break
        else:
            depth -= 1
    return deepest
