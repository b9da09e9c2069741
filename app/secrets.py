"""Minting, hashing and checking the secrets behind API keys (`dk_…`) and personal access tokens (`ap_…`): shared
by keys and auth, below both."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import NamedTuple

API_KEY_PREFIX = "dk_"
PERSONAL_TOKEN_PREFIX = "ap_"
PREFIX_LENGTH = 10  # what is stored and shown to identify a key, e.g. "dk_AbCdEfG"
_RANDOM_BYTES = 32

# 32 bytes in unpadded urlsafe base64 are always 43 characters.
_BODY = r"[A-Za-z0-9_-]{43}"
_API_KEY_SHAPE = re.compile(rf"{API_KEY_PREFIX}{_BODY}")
_PERSONAL_TOKEN_SHAPE = re.compile(rf"{PERSONAL_TOKEN_PREFIX}{_BODY}")


class MintedSecret(NamedTuple):
    """A fresh secret: `key` goes to the caller once; `prefix` and `key_hash` are what gets stored."""

    key: str
    prefix: str
    key_hash: str


def hash_api_key(key: str) -> str:
    """sha256 hex of the secret: the keys have 256 random bits, so a fast unsalted hash is enough to look them up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _mint(marker: str) -> MintedSecret:
    body = base64.urlsafe_b64encode(secrets.token_bytes(_RANDOM_BYTES)).rstrip(b"=").decode("ascii")
    key = marker + body
    return MintedSecret(key=key, prefix=key[:PREFIX_LENGTH], key_hash=hash_api_key(key))


def generate_api_key() -> MintedSecret:
    """A new serving key `dk_` + 43 urlsafe characters."""
    return _mint(API_KEY_PREFIX)


def generate_personal_token() -> MintedSecret:
    """A new personal access token `ap_` + 43 urlsafe characters."""
    return _mint(PERSONAL_TOKEN_PREFIX)


def looks_like_api_key(value: object) -> bool:
    """True when `value` has the shape of a serving key; lets garbage be refused before any DB or Redis lookup."""
    return isinstance(value, str) and _API_KEY_SHAPE.fullmatch(value) is not None


def looks_like_personal_token(value: object) -> bool:
    """True when `value` has the shape of a personal access token (tells it apart from a JWT in `Authorization`)."""
    return isinstance(value, str) and _PERSONAL_TOKEN_SHAPE.fullmatch(value) is not None


def verify_secret(key: str, key_hash: str) -> bool:
    """Whether `key` hashes to the stored `key_hash`, compared in constant time."""
    return hmac.compare_digest(hash_api_key(key), key_hash)
