"""SHA-256 of files computed from the bytes as they are written, in a background thread, so that
a file is never read back to be hashed (hashlib releases the GIL on large buffers).

>>> digests = Digests()
>>> with atomic_open("a.bin", "wb") as f:
...     digests.writer(f, "a.bin").write(b"abc")
>>> digests.hexdigest("a.bin")[:8]
'ba7816bf'
>>> digests.close()
"""

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path


def sha256_of(path) -> str:
    """The SHA-256 of a file, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Digests:
    """SHA-256 of every file written through `writer` (or named with `file`), by path.

    One worker thread runs the updates in the order they were submitted, so each file's digest
    sees its bytes in order. The written data must not change until `wait` or `hexdigest`.
    """

    def __init__(self):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self.digests: dict[Path, object] = {}
        self.pending: list[Future] = []

    def __contains__(self, path) -> bool:
        return Path(path) in self.digests

    def writer(self, f, path) -> "HashingWriter":
        """`f` (a binary file open for writing `path`) wrapped so that its bytes are hashed."""
        digest = hashlib.sha256()
        self.digests[Path(path)] = digest
        return HashingWriter(f, digest, self)

    def update(self, digest, data) -> None:
        self.pending.append(self.executor.submit(digest.update, data))

    def file(self, path) -> None:
        """Hash the complete file `path` (written some other way) by reading it."""
        self.digests[Path(path)] = self.executor.submit(sha256_of, path)
        self.pending.append(self.digests[Path(path)])

    def mark(self) -> Future | None:
        """A future that is done when everything submitted so far is hashed."""
        return self.pending[-1] if self.pending else None

    def hexdigest(self, path) -> str:
        self.finish()
        digest = self.digests[Path(path)]
        return digest.result() if isinstance(digest, Future) else digest.hexdigest()

    def finish(self) -> None:
        """Wait for every update; an error in one is raised here."""
        for future in self.pending:
            future.result()
        self.pending.clear()

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class HashingWriter:
    """A binary file's `write` that also hashes the data (in the background)."""

    def __init__(self, f, digest, digests: Digests):
        self.f, self.digest, self.digests = f, digest, digests

    def write(self, data) -> int:
        written = self.f.write(data)
        self.digests.update(self.digest, data)
        return written
