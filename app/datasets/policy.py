"""What a member of the organization sees of a dataset's values, by role: the policy previews, dry runs and
config checks apply (below the dataset service, so publishing and serving can use it without importing that)."""

from __future__ import annotations

from app.query.policy import KeyPolicy


def preview_policy(role: str) -> KeyPolicy:
    """What a member of the organization sees in a preview, by role.

    - admin: everything as stored (`KeyPolicy.admin()`: unmasked, nothing blocked);
    - designer, analyst: masked (medium and high columns through their strategy), critical columns blocked;
    - viewer, and any role not listed: masked, high and critical columns blocked.
    """
    if role == "admin":
        return KeyPolicy.admin()
    if role in ("designer", "analyst"):
        return KeyPolicy(masking_level="masked", sensitivity_max="high")
    return KeyPolicy(masking_level="masked", sensitivity_max="medium")
