"""
Token formats: validation of ``special_token_format`` / ``token_format`` at construction, and
``parse_stream_token()`` for consumers of a string stream.
"""

from __future__ import annotations

import functools
import string
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_SPECIAL_TOKEN_FORMAT",
    "DEFAULT_TOKEN_FORMAT",
    "StreamItem",
    "check_format",
    "check_special_format",
    "parse_stream_token",
]

DEFAULT_SPECIAL_TOKEN_FORMAT = "<{identifier}:{token}:{params}>"
DEFAULT_TOKEN_FORMAT = "{token}"


def check_format(value: Any, arg: str, sample: dict[str, str]) -> str | None:
    """
    Validate a format string against the placeholders in ``sample`` and render it once with
    the sample values, so a bad format fails here and never in the middle of a stream.
    Returns None when the format is the identity ``{token}``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, got {type(value).__name__}")
    try:
        parsed = [(f, conv) for _, f, _, conv in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{arg} {value!r} is not a valid format string: {exc}") from None
    allowed_s = ", ".join("{" + a + "}" for a in sample)
    for f, conv in parsed:
        if f not in sample:
            shown = "{" + f + "}" if f else "{}"
            if f.split(".", 1)[0].split("[", 1)[0] in sample:
                raise ValueError(
                    f"{arg} {value!r} uses {shown}: attribute and index lookups are not "
                    f"supported; allowed: {allowed_s}"
                )
            raise ValueError(f"{arg} {value!r} uses unknown placeholder {shown}; allowed: {allowed_s}")
        if conv not in (None, "r", "s", "a"):
            raise ValueError(f"{arg} {value!r} uses unknown conversion !{conv}")
    try:
        value.format(**sample)
    except Exception as exc:
        raise ValueError(f"{arg} {value!r} cannot be rendered: {exc}") from None
    return None if value == "{token}" else value


def check_special_format(fmt: str, identifier: str | None) -> None:
    """``special_token_format`` must render and must hold ``{token}``."""
    check_format(
        fmt, "special_token_format", {"identifier": identifier or "", "token": "node:start", "params": ""}
    )
    if "{token" not in fmt.replace("{{", ""):
        raise ValueError(
            f"special_token_format {fmt!r} has no {{token}} placeholder: "
            "every special token (node start, node end, END) would render the same"
        )


class StreamItem(NamedTuple):
    """
    One parsed item of a string stream.

    ``kind`` is ``"start"`` (node start), ``"node"`` (node id), ``"end"`` (node end),
    ``"END"`` (stream end) or ``"token"`` (content); ``node`` is the node name for markers.
    """

    kind: str
    node: str | None
    text: str


def parse_stream_token(token: str, callback: Any = None) -> StreamItem:
    """
    Classify one string from ``Callback.aiter()``: a special token (node start, node id, node
    end, stream END) or content. Works for any ``special_token_format``: pass the callback
    that produced the stream (default: the default format).

    Content that merely *looks* like a special token can only be told apart by position;
    graphai itself never ends a stream on in-band text.

    .. versionadded:: 0.1.0
    """
    if not isinstance(token, str):
        raise TypeError(
            f"parse_stream_token() takes a str from Callback.aiter(), got {type(token).__name__}"
        )
    if callback is None:
        pat = _pattern("graphai", DEFAULT_SPECIAL_TOKEN_FORMAT)
    else:
        pat = _pattern(callback.identifier or "", callback.special_token_format)
    if pat is None:
        return StreamItem("token", None, token)
    prefix, suffix = pat
    if not (token.startswith(prefix) and token.endswith(suffix)) or len(token) < len(prefix) + len(
        suffix
    ):
        return StreamItem("token", None, token)
    body = token[len(prefix) : len(token) - len(suffix)]
    if body == "END":
        return StreamItem("END", None, token)
    if body.endswith(":start"):
        return StreamItem("start", body[: -len(":start")], token)
    if body.endswith(":end"):
        return StreamItem("end", body[: -len(":end")], token)
    return StreamItem("node", body, token)


@functools.lru_cache(maxsize=256)  # bounded: identifiers may be per-request ids
def _pattern(identifier: str, fmt: str) -> tuple[str, str] | None:
    sentinel = "\x00TOKEN\x00"
    try:
        rendered = fmt.format(identifier=identifier, token=sentinel, params="")
    except (KeyError, IndexError, ValueError):
        return None
    if sentinel not in rendered:
        return None
    pre, post = rendered.split(sentinel, 1)
    return pre, post
