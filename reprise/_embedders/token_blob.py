"""A prompt's token vectors as bytes, stored with its cache entry.

The verifier judges a candidate by both prompts' word-piece vectors. An entry
written by this process has them in the token memory; one written by another
replica, or before a restart, would cost a model call. So the cache stores them
with the entry, in this encoding, and a lookup that finds the entry within the
threshold reads them back instead of calling the model.

    header   magic "RTV", version, kind, pieces (u16), dims (u16),
             the text's digest (8 bytes), the model's tag (4 bytes), CRC-32 of the body
    body     the word pieces, UTF-8, joined by "\\n"
             the vectors, float16, `(pieces, dims)`

float16 is what the token memory keeps: a blob read back gives the verifier the
very vectors a remembered text would, so a replica decides as the writer would
have (benchmarks/verifier.md, fifth pass, for what int8 would change). `decode`
returns None, never raises, for bytes that are not a well-formed blob of this
text and this model: a truncated, garbled or foreign blob costs the model call
it would have cost anyway.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from reprise._protocols import Vector

MAGIC = b"RTV"
VERSION = 1
FLOAT16 = 1
#: Pieces stored at most: a longer prompt's vectors (over ~49 kB) are left out and it
#: costs a model call when judged. The verifier reads every piece (the alignment
#: features span the whole prompt), so a truncated list would change its decisions.
MAX_PIECES = 64
_HEADER = struct.Struct("<3sBBHH8s4sI")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A blob read back: its word pieces and their vectors (float16, L2-normalised)."""

    tokens: tuple[str, ...]
    vectors: Vector  # float16, as the token memory keeps them


def model_tag(name: str) -> bytes:
    """The 4 bytes that tie a blob to the model that made it (`name`: its identity)."""
    return hashlib.sha256(name.encode()).digest()[:4]


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:8]


def encode(text: str, tokens: Sequence[str], vectors: Vector, tag: bytes) -> bytes | None:
    """The blob of `text`'s pieces and vectors, or None if there is none to store:
    more than `MAX_PIECES` pieces, a piece with a newline, or no pieces at all."""
    n = len(tokens)
    if n == 0 or n > MAX_PIECES or any("\n" in t for t in tokens):
        return None
    array = np.asarray(vectors, dtype=np.float16)
    if array.ndim != 2 or array.shape[0] != n or not np.isfinite(array).all():
        return None
    pieces = "\n".join(tokens).encode()
    body = struct.pack("<I", len(pieces)) + pieces + array.tobytes()
    header = _HEADER.pack(
        MAGIC, VERSION, FLOAT16, n, array.shape[1], text_digest(text), tag, zlib.crc32(body)
    )
    return header + body


def decode(blob: object, text: str, dims: int, tag: bytes) -> Decoded | None:
    """`text`'s pieces and vectors from `blob`, or None unless it is a whole, intact blob
    of exactly this text, from the model of `tag`, with vectors of `dims` dimensions."""
    try:
        return _decode(blob, text, dims, tag)
    except (ValueError, TypeError, struct.error, UnicodeDecodeError):
        return None


def _decode(blob: object, text: str, dims: int, tag: bytes) -> Decoded | None:
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < _HEADER.size + 4:
        return None
    data = bytes(blob)
    magic, version, kind, n, width, digest, found_tag, crc = _HEADER.unpack_from(data)
    if (magic, version, kind, width, found_tag) != (MAGIC, VERSION, FLOAT16, dims, tag):
        return None
    body = memoryview(data)[_HEADER.size :]
    if n == 0 or zlib.crc32(body) != crc or digest != text_digest(text):
        return None
    (length,) = struct.unpack_from("<I", body)
    if len(body) != 4 + length + 2 * n * dims:
        return None
    tokens = tuple(bytes(body[4 : 4 + length]).decode().split("\n"))
    if len(tokens) != n:
        return None
    vectors = np.frombuffer(body, dtype=np.float16, count=n * dims, offset=4 + length)
    if not np.isfinite(vectors).all():
        return None
    return Decoded(tokens, cast(Vector, vectors.reshape(n, dims)))
