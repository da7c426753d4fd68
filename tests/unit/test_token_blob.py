"""The bytes a prompt's token vectors are stored as: they come back whole, or not at all."""

from __future__ import annotations

import numpy as np
import pytest

from reprise._embedders import token_blob
from reprise._embedders.token_blob import MAX_PIECES, decode, encode, model_tag

TAG = model_tag("all-MiniLM-L6-v2-0123456789abcdef")
TEXT = "how do I bake sourdough bread?"
PIECES = ["how", "do", "i", "bake", "sour", "##dough", "bread", "?"]


def _vectors(n: int, dims: int = 384, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dims)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float16)


def test_a_blob_round_trips_to_the_same_pieces_and_float16_vectors() -> None:
    vectors = _vectors(len(PIECES))
    blob = encode(TEXT, PIECES, vectors, TAG)

    assert blob is not None
    # header, the pieces, 2 bytes per dimension per piece: ~6 kB for these 8 pieces
    assert len(blob) == 25 + 4 + len("\n".join(PIECES)) + 2 * 384 * len(PIECES)
    found = decode(blob, TEXT, 384, TAG)
    assert found is not None
    assert found.tokens == tuple(PIECES)
    assert found.vectors.dtype == np.float16
    np.testing.assert_array_equal(found.vectors, vectors)  # bit for bit what the memory holds


def test_unusual_pieces_round_trip() -> None:
    pieces = ["", "é", "##✓", "[UNK]", " "]
    found = decode(encode("x", pieces, _vectors(5, 8), TAG), "x", 8, TAG)
    assert found is not None
    assert found.tokens == tuple(pieces)


def test_nothing_is_stored_for_what_cannot_come_back() -> None:
    assert encode(TEXT, [], _vectors(0), TAG) is None
    assert encode(TEXT, ["a\nb"], _vectors(1), TAG) is None
    assert encode(TEXT, ["a", "b"], _vectors(3), TAG) is None  # pieces and rows disagree
    bad = _vectors(2)
    bad[1, 0] = np.inf
    assert encode(TEXT, ["a", "b"], bad, TAG) is None


def test_a_long_prompt_is_not_stored_past_the_cap() -> None:
    assert encode(TEXT, ["w"] * MAX_PIECES, _vectors(MAX_PIECES), TAG) is not None
    assert encode(TEXT, ["w"] * (MAX_PIECES + 1), _vectors(MAX_PIECES + 1), TAG) is None


def test_a_blob_of_another_text_model_or_width_is_absent() -> None:
    blob = encode(TEXT, PIECES, _vectors(len(PIECES)), TAG)

    assert decode(blob, TEXT + " ", 384, TAG) is None
    assert decode(blob, TEXT, 768, TAG) is None
    assert decode(blob, TEXT, 384, model_tag("another-model")) is None


@pytest.mark.parametrize("where", [0, 3, 5, 9, 20, 40, 200, -1])
def test_a_garbled_byte_anywhere_makes_it_absent(where: int) -> None:
    blob = bytearray(encode(TEXT, PIECES, _vectors(len(PIECES)), TAG) or b"")
    blob[where] ^= 0x40
    assert decode(bytes(blob), TEXT, 384, TAG) is None


def test_truncated_extended_or_foreign_bytes_are_absent() -> None:
    blob = encode(TEXT, PIECES, _vectors(len(PIECES)), TAG) or b""
    for cut in (0, 1, 10, 24, 25, 29, 40, len(blob) - 1):
        assert decode(blob[:cut], TEXT, 384, TAG) is None
    assert decode(blob + b"\0", TEXT, 384, TAG) is None
    rng = np.random.default_rng(1)
    for size in (1, 35, 100, 6_000):
        assert decode(rng.bytes(size), TEXT, 384, TAG) is None
    for value in (None, "a string", 12, [blob]):
        assert decode(value, TEXT, 384, TAG) is None
    assert decode(bytearray(blob), TEXT, 384, TAG) is not None  # any bytes-like will do


def test_a_blob_whose_checksum_was_recomputed_over_bad_vectors_is_absent() -> None:
    """Bytes that pass the checksum (written so) but hold NaN vectors never reach a verifier."""
    import zlib

    blob = bytearray(encode(TEXT, ["a"], _vectors(1, 4), TAG) or b"")
    blob[-2:] = np.array([np.nan], dtype=np.float16).tobytes()
    header = token_blob._HEADER
    fields = list(header.unpack_from(blob))
    fields[-1] = zlib.crc32(bytes(blob[header.size :]))
    blob[: header.size] = header.pack(*fields)
    assert decode(bytes(blob), TEXT, 4, TAG) is None
