"""How a service's traffic is split over its published versions: the routing document, checked once into a frozen
`Routing`, and the per-call choice (weighted random, or weighted rendezvous hashing of a dispatch key)."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from app.errors import APIError

STRATEGIES = ("single", "random", "hash")


@dataclass(frozen=True)
class Route:
    version: int
    weight: int


@dataclass(frozen=True)
class Routing:
    strategy: str
    entries: tuple[Route, ...]
    shadow_version: int | None = None

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(entry.version for entry in self.entries)

    @property
    def primary(self) -> int:
        """The version with the most weight (the newest among equals): what `published_version` names."""
        return max(self.entries, key=lambda entry: (entry.weight, entry.version)).version

    def to_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "entries": [{"version": e.version, "weight": e.weight} for e in self.entries],
            "shadow_version": self.shadow_version,
        }

    def pick(self, dispatch_key: str | None) -> tuple[int, bool]:
        """(the version that serves this call, whether a `hash` routing fell back to `random` for want of a key)."""
        if len(self.entries) == 1:
            return self.entries[0].version, False
        if self.strategy == "hash" and dispatch_key:
            return rendezvous_pick(self.entries, dispatch_key), False
        # Module-level random is reseeded in every forked process (os.register_at_fork), so servers never agree.
        chosen = random.choices(self.entries, weights=[e.weight for e in self.entries])[0]  # noqa: S311 - not a secret
        return chosen.version, self.strategy == "hash"


def single(version: int) -> Routing:
    return Routing("single", (Route(version, 100),), None)


def _unit_hash(dispatch_key: str, version: int) -> float:
    """A uniform number in (0, 1) from the key and the version: the same on every server and every run."""
    digest = hashlib.blake2b(f"{version}\x00{dispatch_key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def rendezvous_pick(entries: tuple[Route, ...], dispatch_key: str) -> int:
    """Weighted rendezvous hashing: each version scores -weight / ln(u(key, version)) and the highest wins.

    A key lands on a version with probability weight / total, always the same one while the weights hold, and when a
    weight changes only the keys that must move do: a key changes version only if the version it moves to gained
    weight or the one it leaves lost some (no reshuffle among the others)."""
    return max(entries, key=lambda e: -e.weight / math.log(_unit_hash(dispatch_key, e.version))).version


def _routing_error(field: str, message: str) -> APIError:
    return APIError(422, "validation_error", f"{field}: {message}", {"fields": {field: [message]}})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_routing(body: object, published: set[int]) -> Routing:
    """The routing document checked field by field (422 naming the field); every version must be in `published`."""
    if not isinstance(body, dict):
        raise _routing_error("body", "expected a JSON object")
    unknown = sorted(set(body) - {"strategy", "entries", "shadow_version"})
    if unknown:
        raise _routing_error(unknown[0], "unknown field")
    strategy = body.get("strategy")
    if strategy not in STRATEGIES:
        raise _routing_error("strategy", f"one of {', '.join(STRATEGIES)}")
    entries = body.get("entries")
    if not isinstance(entries, list) or not entries:
        raise _routing_error("entries", "a non-empty list of {version, weight}")
    if strategy == "single" and len(entries) != 1:
        raise _routing_error("entries", "a single routing has exactly one entry")
    if len(entries) > 20:
        raise _routing_error("entries", "at most 20 versions")
    routes, seen = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) - {"version", "weight"}:
            raise _routing_error(f"entries[{i}]", "an object {version, weight}")
        version, weight = entry.get("version"), entry.get("weight", 100 if strategy == "single" else None)
        if not _is_int(version) or version < 1:
            raise _routing_error(f"entries[{i}].version", "a positive integer")
        if version not in published:
            raise _routing_error(f"entries[{i}].version", f"version {version} is not a published version of this asset")
        if version in seen:
            raise _routing_error(f"entries[{i}].version", f"version {version} is named twice")
        if not _is_int(weight) or weight < 1:
            raise _routing_error(f"entries[{i}].weight", "a positive integer")
        seen.add(version)
        routes.append(Route(version, weight))
    if sum(route.weight for route in routes) != 100:
        raise _routing_error("entries", f"weights must sum to 100 (they sum to {sum(r.weight for r in routes)})")
    shadow = body.get("shadow_version")
    if shadow is not None:
        if not _is_int(shadow) or shadow < 1:
            raise _routing_error("shadow_version", "a positive integer or null")
        if shadow not in published:
            raise _routing_error("shadow_version", f"version {shadow} is not a published version of this asset")
    return Routing(strategy, tuple(routes), shadow)


def stored_routing(raw: dict | None, published_version: int | None) -> Routing | None:
    """The routing as stored on the asset (trusted: it was checked on save); None before anything is published."""
    if raw:
        return Routing(
            raw["strategy"],
            tuple(Route(int(e["version"]), int(e["weight"])) for e in raw["entries"]),
            raw.get("shadow_version"),
        )
    return single(published_version) if published_version is not None else None
