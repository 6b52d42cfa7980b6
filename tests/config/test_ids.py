"""Public ids: ULIDs in Crockford base32 behind a type prefix."""

from __future__ import annotations

import pytest

from config.ids import _ALPHABET, id_at, id_time_ms, new_id


def _crockford(value: int, length: int) -> str:
    """The digits one at a time, as the ULID spec writes them: the reference for the fast encoder."""
    digits = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


@pytest.mark.parametrize("epoch_ms", [0, 1, 31, 32, 1_700_000_000_000, 1_999_999_999_999, (1 << 48) - 1])
def test_id_at_when_time_given_then_crockford_digits_and_time_round_trips(epoch_ms):
    value = id_at("ord", epoch_ms)
    assert value == f"ord_{_crockford(epoch_ms, 10)}{'0' * 16}"
    assert id_time_ms(value) == epoch_ms


@pytest.mark.parametrize(("epoch_ms", "clamped"), [(-1, 0), (-(10**15), 0), (1 << 48, (1 << 48) - 1)])
def test_id_at_when_time_outside_the_id_range_then_first_or_last_id_time(epoch_ms, clamped):
    assert id_at("ord", epoch_ms) == id_at("ord", clamped)


def test_new_id_when_minted_in_a_row_then_strictly_increasing_and_well_formed():
    ids = [new_id("pay") for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for value in ids[:50]:
        prefix, body = value.split("_")
        assert prefix == "pay"
        assert len(body) == 26
        assert set(body) <= set(_ALPHABET)
