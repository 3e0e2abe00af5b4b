"""Decoded arrays cached outside the (possibly read-only) data directory, keyed on the files' identity."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

CACHE_VERSION = "1"


def cache_dir() -> Path:
    """$DEEP_EMOTION_CACHE, else $XDG_CACHE_HOME/deep_emotion, else ~/.cache/deep_emotion."""
    if os.environ.get("DEEP_EMOTION_CACHE"):
        return Path(os.environ["DEEP_EMOTION_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deep_emotion"


def files_key(tag: str, root: Path, files: Iterable[Path]) -> str:
    """Hash of the reader's tag and each file's relative path, size and modification time."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{tag}|{root.resolve()}".encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load the arrays stored under `key`, or build and store them (atomically; failures to write are ignored)."""
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            pass  # a damaged cache file is rebuilt below
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
    return arrays
