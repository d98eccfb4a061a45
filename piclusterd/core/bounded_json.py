"""The one JSON reader for values another machine wrote (annotations, records, the outage ConfigMap). Pure.

``json.loads`` alone trusts its input: a 100,000-deep array exhausts the stack (RecursionError, which no
caller expected), ``NaN``/``Infinity``/``1e400`` become floats no range check was written for, and a 5,000-digit
integer raises from inside the int conversion. :func:`load_bounded_json` checks, in this order, before and
while decoding: the text is a ``str`` (or ``bytes`` that are valid UTF-8) and encodes as UTF-8 (no lone
surrogates); its size; its nesting depth (counted on the raw text, before ``json.loads`` recurses); then it
decodes with non-finite numbers and over-long integers refused. Every refusal is a :class:`JsonRefused` (a
``ValueError``) saying why, so callers turn it into their own "invalid" value for that one object.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "API_MAX_BYTES",
    "API_MAX_DEPTH",
    "DEFAULT_LIMITS",
    "JsonLimits",
    "JsonRefused",
    "load_api_json",
    "load_bounded_json",
]


class JsonRefused(ValueError):
    """The text is not JSON piclusterd will read; ``str()`` says why (size, depth, number, encoding)."""


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """``max_bytes``: the UTF-8 size (Kubernetes caps all of an object's annotations at 256 KiB together);
    ``max_depth``: nesting of arrays and objects (our records nest two or three deep);
    ``max_int_digits``: digits of one integer (no count or time we read needs more than 20)."""

    max_bytes: int = 256 * 1024
    max_depth: int = 32
    max_int_digits: int = 30


DEFAULT_LIMITS = JsonLimits()

# A JSON string, escapes included; what is inside one is never structure.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep(text: str, limit: int) -> bool:
    """Whether ``[``/``{`` outside strings nest deeper than ``limit`` (stops at the first level too deep)."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a number piclusterd accepts")


def _int(limit: int) -> Any:
    def parse(text: str) -> int:
        if len(text.lstrip("-")) > limit:
            raise JsonRefused(f"an integer of {len(text.lstrip('-'))} digits (at most {limit})")
        return int(text)

    return parse


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"{text[:40]} is out of range (not a finite number)")
    return value


def load_bounded_json(raw: str | bytes, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """Decode ``raw`` within ``limits``; raises :class:`JsonRefused` (only) on anything else."""
    if isinstance(raw, bytes | bytearray):
        if len(raw) > limits.max_bytes:
            raise JsonRefused(f"{len(raw)} bytes (at most {limits.max_bytes})")
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonRefused(f"not UTF-8 text (byte {error.start})") from None
    elif isinstance(raw, str):
        text = raw
    else:
        raise JsonRefused(f"a {type(raw).__name__}, not text")
    if len(text) > limits.max_bytes:  # cheap first: a character is at least one byte
        raise JsonRefused(f"more than {limits.max_bytes} bytes")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise JsonRefused("not UTF-8 text (a lone surrogate)") from None
    if size > limits.max_bytes:
        raise JsonRefused(f"{size} bytes (at most {limits.max_bytes})")
    if _too_deep(text, limits.max_depth):
        raise JsonRefused(f"nested more than {limits.max_depth} deep")
    try:
        value = json.loads(
            text, parse_constant=_refuse_constant, parse_int=_int(limits.max_int_digits), parse_float=_float
        )
    except JsonRefused:
        raise
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise JsonRefused("not JSON") from None
    _refuse_surrogates(value)
    return value


def _refuse_surrogates(value: Any) -> None:
    """``"\\ud800"`` decodes to a lone surrogate, which no journal, Event or file can take as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonRefused("a string with a lone surrogate (not UTF-8)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


#: One API response (a List page of 500 objects, or one object) at most: 64 MiB. Measured pages: 500 pods of
#: the clinic's (3 KB each) are 1.6 MB; with managedFields and long specs (16 KB a pod) 8 MB; 500 Nodes with
#: 50-image lists (40 KB each) 20 MB. Over three times the largest, and well under a Pi's memory.
API_MAX_BYTES = 64 * 1024 * 1024
#: Nesting of an API object: Kubernetes' own objects nest about 10 deep (a pod's affinity terms); 64 leaves room
#: for CRD-shaped values in annotations' siblings, and stays far below the interpreter's recursion limit.
API_MAX_DEPTH = 64

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: Every byte but the brackets deleted, openers made "(" and closers ")": the skeleton whose depth is measured.
_SKELETON = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def _api_too_deep(raw: bytes, limit: int) -> bool:
    """Whether ``raw`` nests deeper than ``limit``: linear, in C-level passes, exact where it matters.

    The brackets alone (strings' too) are the skeleton; each pass deletes every innermost ``()`` pair, so a
    skeleton nested ``d`` deep is empty after ``d`` passes: at most ``limit`` passes over a string a twentieth the
    size of the page (milliseconds for 10 MB). Brackets inside strings can make this estimate wrong either way:
    past the limit, the exact count is made (strings skipped) before refusing; and anything deeper than the
    interpreter's recursion limit is refused by ``json.loads`` in any case.
    """
    skeleton = raw.translate(_SKELETON, _NOT_BRACKETS)
    for _ in range(limit):
        shorter = skeleton.replace(b"()", b"")
        if len(shorter) == len(skeleton):
            return False
        skeleton = shorter
    if b"()" not in skeleton:
        return False
    return _too_deep(raw.decode("utf-8", "replace"), limit)


def load_api_json(raw: bytes, max_bytes: int = API_MAX_BYTES, max_depth: int = API_MAX_DEPTH) -> Any:
    """Decode one API server response: UTF-8, at most ``max_bytes``, nested at most ``max_depth``, no NaN or
    infinity, no lone surrogate; raises :class:`JsonRefused` (only) on anything else.

    Unlike :func:`load_bounded_json` it leaves integers to ``int()`` (which refuses more than 4,300 digits:
    ``sys.get_int_max_str_digits``), since a page holds tens of thousands of them and a per-integer hook made a
    10 MB page six times slower; the values read from it are range-checked where they are used.
    """
    if len(raw) > max_bytes:
        raise JsonRefused(f"{len(raw)} bytes (at most {max_bytes})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonRefused(f"not UTF-8 text (byte {error.start})") from None
    if _api_too_deep(raw, max_depth):
        raise JsonRefused(f"nested more than {max_depth} deep")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_float)
    except JsonRefused:
        raise
    except (ValueError, RecursionError):  # JSONDecodeError, an integer over int()'s digit limit
        raise JsonRefused("not JSON") from None
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then walk every string
        _refuse_surrogates(value)
    return value
