"""Safe model files: a restricted unpickler and atomic writers.

A ``.pkl`` model (e.g. ``sarsa_final.pkl``) may hold only plain values: ``dict``, ``list``,
``tuple``, ``str``, ``bytes``, numbers, booleans, ``None``, plus NumPy arrays / scalars and
``collections.OrderedDict`` (so files written by the original toolkit, which pickled NumPy
arrays, still load). :func:`load_pickle` refuses every other global *before* it is imported, so
a tampered file can never run code; every failure is a :class:`ModelFileError` (a
``ValueError``) whose one-line message names the file.

:func:`save_pickle` writes through a temporary file and ``os.replace`` (a crash never leaves a
half-written model) and checks that the bytes load back with the restricted unpickler, so we
never write a model we would refuse to read. :func:`atomic_write_json` does the same for JSON.
Files get the permissions a plain ``open()`` would give (``0o666`` minus the umask), not
``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterable

#: (module, name) pairs a model file may reference. Nothing here can run code: they rebuild
#: NumPy arrays, dtypes and scalars, an OrderedDict, and bytes (protocol-2 pickles).
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
    ("builtins", "bytes"),
    ("__builtin__", "bytes"),  # protocol-2 files name builtins the Python 2 way
})

PICKLE_PROTOCOL = 4


class ModelFileError(ValueError):
    """A model file is missing, unreadable, tampered with, or not the expected kind."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``allowed`` (default ALLOWED_GLOBALS)."""

    def __init__(self, file, allowed: Iterable[tuple[str, str]] = ALLOWED_GLOBALS) -> None:
        super().__init__(file)
        self._allowed = frozenset(allowed)

    def find_class(self, module: str, name: str):
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused global '{module}.{name}' (a model file may hold only plain values "
            "and NumPy arrays)")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id (not a plain model file)")


def loads_restricted(data: bytes, allowed: Iterable[tuple[str, str]] = ALLOWED_GLOBALS) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; raises ``pickle.UnpicklingError``
    (or another exception of the pickle machinery) on anything else."""
    return RestrictedUnpickler(io.BytesIO(data), allowed).load()


def load_pickle(path: str | os.PathLike, what: str = "model file",
                allowed: Iterable[tuple[str, str]] = ALLOWED_GLOBALS) -> Any:
    """Read a ``.pkl`` file through the restricted unpickler.

    Raises:
        ModelFileError: the file is missing, empty, truncated, not a pickle, or references
            a global outside ``allowed`` (the message says which).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{what} not found: {p}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if not data:
        raise ModelFileError(f"{what} {p} is empty")
    if data[:4] == b"PK\x03\x04":
        raise ModelFileError(f"{what} {p} is not a valid model file: expected a pickled dict of "
                             "plain values, got a zip archive (a DQN .pt model?)")
    try:
        return loads_restricted(data, allowed)
    except Exception as exc:  # any unpickling failure is the same user-facing error
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{what} {p} is not a valid model file: {detail}") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory + ``os.replace``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 -> what open() would give
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Atomically write ``obj`` as JSON (NumPy scalars become plain numbers)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps_checked(obj: Any) -> bytes:
    """Pickle ``obj`` and verify that the restricted unpickler reads it back."""
    data = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    try:
        loads_restricted(data)
    except pickle.UnpicklingError as exc:
        raise TypeError(f"refusing to save a model the loader would reject: {exc}") from None
    return data


def save_pickle(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically pickle ``obj`` (plain values and arrays only) to ``path``."""
    return atomic_write_bytes(path, dumps_checked(obj))


__all__ = [
    "ALLOWED_GLOBALS", "ModelFileError", "RestrictedUnpickler", "atomic_write_bytes",
    "atomic_write_json", "atomic_write_text", "current_umask", "dumps_checked", "load_pickle",
    "loads_restricted", "save_pickle",
]
