"""Environment variables set for the length of a ``with`` block, then put back."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Mapping


@contextmanager
def environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set each variable of ``values`` (``None``: unset it) in ``os.environ`` for the block;
    afterwards, also after an exception, each is back to its previous value, or unset if it
    was unset (an empty string is a value, kept as such)."""
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            _put(name, value)
        yield
    finally:
        for name, value in before.items():
            _put(name, value)


def _put(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
