"""The Raft transport's AES-GCM sealer (``mca.raftlog.RaftSealer``): what it seals opens only
under the same password and untouched, its timestamp is authenticated, and no nonce repeats."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from mca.raftlog import RaftSealer


@pytest.fixture(scope="module")
def sealer() -> RaftSealer:
    return RaftSealer("s3cret")


def test_a_sealed_message_opens_with_its_timestamp(sealer: RaftSealer) -> None:
    token = sealer.encrypt_at_time(b"append entries", 1234)
    assert b"append entries" not in token
    assert sealer.extract_timestamp(token) == 1234
    assert sealer.decrypt(token) == b"append entries"


def test_another_password_cannot_open_it(sealer: RaftSealer) -> None:
    token = sealer.encrypt_at_time(b"vote for me", 7)
    with pytest.raises(InvalidTag):
        RaftSealer("wrong").decrypt(token)


@pytest.mark.parametrize("where", [0, 8, 20, -1])  # timestamp, nonce, ciphertext, tag
def test_any_changed_byte_is_refused(sealer: RaftSealer, where: int) -> None:
    token = bytearray(sealer.encrypt_at_time(b"commit index 42", 99))
    token[where] ^= 0x01
    with pytest.raises(InvalidTag):
        sealer.decrypt(bytes(token))


def test_a_short_token_is_refused_before_opening(sealer: RaftSealer) -> None:
    with pytest.raises(ValueError, match="shorter"):
        sealer.extract_timestamp(b"\x00" * 20)


def test_nonces_never_repeat_even_past_the_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    sealer = RaftSealer("s3cret")
    monkeypatch.setattr(RaftSealer, "_COUNTER_MAX", 3)
    nonces = [sealer.encrypt_at_time(b"x", 1)[8:20] for _ in range(10)]
    assert len(set(nonces)) == 10
    assert len({n[:8] for n in nonces}) == 4  # a fresh random prefix after every 3
