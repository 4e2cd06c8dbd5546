"""Things built once and kept on disk (the Verilator simulators, the golden model's C++
kernel): one directory per key, a hash of everything that goes into the build.

>>> build_key("source", "g++ 12") == build_key("source", "g++ 12") != build_key("source", "g++ 13")
True
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def cache_root() -> Path:
    """Directory of cached builds: $FPGACNN_CACHE, else ~/.cache/fpgacnn."""
    root = os.environ.get("FPGACNN_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "fpgacnn"


def build_key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def cached_build(kind: str, key: str, product: str, build: Callable[[Path], None]) -> Path:
    """Path of `product` in `<cache_root>/<kind>/<key>`; when it is not there yet,
    `build(work)` makes it in a fresh directory that is renamed into place only when the build
    succeeds (no failure leaves a half-built directory; a concurrent identical build wins)."""
    final = cache_root() / kind / key
    if (final / product).exists():
        return final / product
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=final.parent))
    try:
        build(work)
        try:
            os.rename(work, final)
        except OSError:       # another process finished the same build first
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final / product
