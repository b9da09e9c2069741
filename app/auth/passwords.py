"""Password hashing with Argon2id, and the list of passwords too common to accept."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

# PASSWORD_HASH_PROFILE names one of these. Every environment hashes with RFC 9106's low-memory profile (64 MiB,
# 3 passes, 4 lanes); only the test suite's config picks the cheapest, so a thousand sign-ups do not cost minutes.
# A hash carries its own parameters, so a password hashed under one profile verifies under any other.
PROFILES = {"rfc_9106_low_memory": profiles.RFC_9106_LOW_MEMORY, "cheapest": profiles.CHEAPEST}


@cache
def _hasher_and_dummy(profile: str) -> tuple[PasswordHasher, str]:
    hasher = PasswordHasher.from_parameters(PROFILES[profile])
    # Verifying against this keeps a login for an unknown user as slow as one for a known user.
    return hasher, hasher.hash("apiary-dummy-password")


def _hasher() -> tuple[PasswordHasher, str]:
    return _hasher_and_dummy(current_app.config["PASSWORD_HASH_PROFILE"])


def hash_password(password: str) -> str:
    hasher, _ = _hasher()
    return hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    try:
        return hasher.verify(password_hash or dummy, password) and password_hash is not None
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
