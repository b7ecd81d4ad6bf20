"""The archive backend's file: JSON lines appended to one path, the file kept open.

Opening and closing the file for every batch cost a busy gateway about 50 µs a batch
(open, close, a megabyte's buffer), several times what writing a small batch costs.
The file stays open between batches instead; every batch is flushed before it counts
as delivered. At most once a second the path is looked at again: if the file was
moved away or replaced (log rotation), the next batch goes to a file opened at the
path anew. Any write error closes the file, so the retry starts from a fresh open.
"""
import os
import time
from pathlib import Path
from typing import BinaryIO

from mappings import jsonl

BUFFER = 1 << 20  # bytes gathered per write
RECHECK = 1.0  # seconds between looks at whether the path still names the open file


class Archive:
    def __init__(self, path: str | os.PathLike, recheck: float = RECHECK):
        self.path = Path(path)
        self.recheck = recheck
        self._file: BinaryIO | None = None
        self._next_check = 0.0

    def write(self, events: list[dict], encoded: list[bytes | None] | None = None) -> None:
        """Each line written as it is encoded, never all of a read's megabytes at once: the
        buffer gathers small lines into a few writes, a large line goes straight out.
        ``encoded``: per event, its JSON made already (`jsonl.lines`)."""
        fh = self._open()
        try:
            fh.writelines(jsonl.lines(events, encoded))
            fh.flush()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._file is not None:
            fh, self._file = self._file, None
            try:
                fh.close()
            except OSError:
                pass

    def _open(self) -> BinaryIO:
        now = time.monotonic()
        if self._file is not None and now < self._next_check:
            return self._file
        if self._file is not None and not self._still_at_path(self._file):
            self.close()
        if self._file is None:
            self._file = self.path.open("ab", buffering=BUFFER)
        self._next_check = now + self.recheck
        return self._file

    def _still_at_path(self, fh: BinaryIO) -> bool:
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fh.fileno())
        return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)
