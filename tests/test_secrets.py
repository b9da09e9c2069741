"""API keys and personal access tokens: shape, uniqueness, and that only a hash needs storing."""

from __future__ import annotations

import hashlib

import pytest

from app.secrets import (
    generate_api_key,
    generate_personal_token,
    hash_api_key,
    looks_like_api_key,
    looks_like_personal_token,
    verify_secret,
)


def test_api_key_shape_prefix_and_hash():
    minted = generate_api_key()
    assert minted.key.startswith("dk_")
    assert len(minted.key) == 46  # "dk_" + 43 urlsafe characters of 32 random bytes
    assert "=" not in minted.key
    assert minted.prefix == minted.key[:10]
    assert minted.key_hash == hashlib.sha256(minted.key.encode()).hexdigest() == hash_api_key(minted.key)
    assert looks_like_api_key(minted.key)


def test_personal_token_uses_its_own_prefix():
    minted = generate_personal_token()
    assert minted.key.startswith("ap_") and len(minted.key) == 46
    assert minted.prefix == minted.key[:10]
    assert looks_like_personal_token(minted.key)
    assert not looks_like_api_key(minted.key)
    assert not looks_like_personal_token(generate_api_key().key)


def test_every_key_is_different():
    keys = {generate_api_key().key for _ in range(1000)}
    assert len(keys) == 1000


@pytest.mark.parametrize(
    "value",
    [
        "",
        "dk_",
        "dk_short",
        "Bearer dk_" + "a" * 43,
        "dk_" + "a" * 42,
        "dk_" + "a" * 44,
        "dk_" + "a" * 42 + "!",
        "dk_" + "a" * 42 + "\n",
        "xx_" + "a" * 43,
        None,
        42,
        b"dk_" + b"a" * 43,
    ],
)
def test_garbage_is_refused_by_shape(value):
    assert not looks_like_api_key(value)


def test_verify_secret_accepts_only_the_matching_key():
    minted = generate_api_key()
    assert verify_secret(minted.key, minted.key_hash)
    assert not verify_secret(generate_api_key().key, minted.key_hash)
    assert not verify_secret(minted.key, "")
