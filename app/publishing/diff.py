"""Structural diff of two published versions: one entry per changed leaf path."""

from __future__ import annotations

from typing import Any


def diff_documents(left: Any, right: Any, path: str = "") -> list[dict]:
    """[{path, kind: added|removed|changed, left, right}] for every leaf that differs; lists diff by index,
    except lists of objects with an `id` (endpoints), which are matched by id so a reorder is not a change."""
    if isinstance(left, dict) and isinstance(right, dict):
        out: list[dict] = []
        for key in list(left) + [k for k in right if k not in left]:
            child = f"{path}.{key}" if path else str(key)
            if key not in right:
                out.append({"path": child, "kind": "removed", "left": left[key], "right": None})
            elif key not in left:
                out.append({"path": child, "kind": "added", "left": None, "right": right[key]})
            else:
                out.extend(diff_documents(left[key], right[key], child))
        return out
    if isinstance(left, list) and isinstance(right, list):
        if _keyed_by_id(left) and _keyed_by_id(right):
            return diff_documents({item["id"]: item for item in left}, {item["id"]: item for item in right}, path)
        out = []
        for i in range(max(len(left), len(right))):
            child = f"{path}[{i}]"
            if i >= len(right):
                out.append({"path": child, "kind": "removed", "left": left[i], "right": None})
            elif i >= len(left):
                out.append({"path": child, "kind": "added", "left": None, "right": right[i]})
            else:
                out.extend(diff_documents(left[i], right[i], child))
        return out
    if left != right or type(left) is not type(right):
        return [{"path": path, "kind": "changed", "left": left, "right": right}]
    return []


def _keyed_by_id(items: list) -> bool:
    ids = [item.get("id") for item in items if isinstance(item, dict)]
    return len(ids) == len(items) and all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids)
