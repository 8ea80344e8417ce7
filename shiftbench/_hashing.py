"""The sha256 digests shiftbench stores or seeds from, in one place.

Splits, cache keys, twin keys, suite and config hashes and synthetic data all depend on these
values bit for bit (``tests/test_hashing.py`` pins them), so a caller may only choose *what*
it hashes and how much of the digest it keeps; how text becomes bytes (UTF-8) and which
bytes are kept (the first ones) is decided here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

__all__ = ["canonical_json", "hex_digest", "stable_int"]


def _bytes(payload: str | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode("utf-8")


def hex_digest(payload: str | bytes, length: int | None = None) -> str:
    """sha256 of ``payload`` (text is UTF-8 encoded) as hex, cut to its first ``length`` chars."""
    return hashlib.sha256(_bytes(payload)).hexdigest()[:length]


def stable_int(value: object, nbytes: int = 8, byteorder: Literal["big", "little"] = "big") -> int:
    """An unsigned integer from the first ``nbytes`` of sha256(``str(value)``), the same in
    every process and on every machine (Python's ``hash`` is salted per process)."""
    payload = value if isinstance(value, bytes) else str(value)
    return int.from_bytes(hashlib.sha256(_bytes(payload)).digest()[:nbytes], byteorder)


def canonical_json(obj: Any, *, default: Any = None) -> str:
    """JSON with sorted keys and no whitespace: the input of every hash we store."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default)
