"""Password hashing with Argon2id, and the list of passwords too common to accept."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Verifying against this keeps a login for an unknown user as slow as one for a known user.
_DUMMY_HASH = _hasher.hash("apiary-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


_COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")
COMMON_PASSWORD = "is one of the most common passwords; choose another"


@cache
def _common_passwords() -> frozenset[str]:
    lines = _COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def is_common_password(password: str) -> bool:
    """Whether `password` (any case) is on the embedded list of the most common passwords (Openwall's public-domain
    list), or is one of them with digits or symbols tacked on (`password123`, `Sunshine2024!`)."""
    lowered = password.strip().lower()
    base = lowered.rstrip("0123456789!@#$%^&*.?_- ")
    common = _common_passwords()
    return lowered in common or base in common
