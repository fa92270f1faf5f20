"""Helpers that derive broker bodies from the seed fixtures."""

from __future__ import annotations

import json


def edit_first_row(body: bytes, rows: str, **changes: object) -> bytes:
    """``body`` with fields of the first row under ``rows`` replaced (None deletes the field)."""
    document = json.loads(body)
    row = document[rows][0]
    for name, value in changes.items():
        if value is None:
            del row[name]
        else:
            row[name] = value
    return json.dumps(document).encode()
