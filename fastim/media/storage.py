"""Content-addressed files: a file is named by the SHA-256 of its bytes.

``resource/ab/ab12…ef.png`` holds the bytes whose SHA-256 is ``ab12…ef``; the two-letter
directory keeps any one directory small. Because a name can only ever hold one content:

* the same bytes are stored once, however often they are uploaded (the second time
  nothing is written at all);
* a file never changes once written, so browsers may cache it for a year (``immutable``);
* two uploads of the same bytes at the same moment cannot corrupt each other: each links
  a complete file into place with ``os.link``, which fails if the name exists.

Blocking file I/O: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in pieces (never whole in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """A file in the store."""

    digest: str
    path: Path
    url: str
    size: int
    #: False when the same bytes were already stored (nothing was written).
    created: bool


class ContentStore:
    """Files under `root` named by their SHA-256, served at `url_prefix`."""

    def __init__(self, root: Path, url_prefix: str = "/resource/") -> None:
        self.root = Path(root)
        self.url_prefix = url_prefix
        #: Hidden (never served) directory for files being written.
        self.incoming = self.root / ".incoming"

    def prepare(self) -> None:
        """Create the directories."""
        self.incoming.mkdir(parents=True, exist_ok=True)

    def relative_name(self, digest: str, extension: str) -> str:
        return f"{digest[:2]}/{digest}.{extension}"

    def path_for(self, digest: str, extension: str) -> Path:
        return self.root / self.relative_name(digest, extension)

    def url_for(self, digest: str, extension: str) -> str:
        return self.url_prefix + self.relative_name(digest, extension)

    def put(self, source: Path, extension: str) -> StoredFile:
        """Store the bytes of `source` (which stays where it is: the caller deletes it)."""
        digest = sha256_file(source)
        final = self.path_for(digest, extension)
        url = self.url_for(digest, extension)
        if final.exists():
            return StoredFile(digest, final, url, final.stat().st_size, created=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Temporary files are made 0600; what is served must be readable by a front
        # proxy too. It is a fresh file of ours (or the upload's own temporary file).
        os.chmod(source, 0o644)
        try:
            created = _link(source, final, self.incoming)
        except FileExistsError:
            created = False  # the same bytes arrived at the same moment: theirs is ours
        return StoredFile(digest, final, url, final.stat().st_size, created)

    def exists(self, url: str) -> bool:
        """Whether a URL handed out by `put` still names a stored file."""
        if not url.startswith(self.url_prefix):
            return False
        return (self.root / url[len(self.url_prefix):]).is_file()


def _link(source: Path, final: Path, incoming: Path) -> bool:
    """Make `final` a complete copy of `source` in one atomic step."""
    try:
        os.link(source, final)
        return True
    except OSError as exc:
        # Another file system (EXDEV), or one without hard links: copy beside the
        # target first, then link the finished copy into place.
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    fd, name = tempfile.mkstemp(prefix=".tmp-", dir=incoming)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
        os.chmod(name, 0o644)
        os.link(name, final)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


class UploadIndex:
    """What an upload was turned into, by the SHA-256 of the bytes as uploaded.

    The second upload of the same file is answered from here without decoding it again
    (fastIM's suggested "instant re-upload"). It is a cache: an entry is used only if
    the options that shape the result are unchanged and the files it names still exist;
    otherwise the upload is processed again (and lands on the same names).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, source_digest: str) -> Path:
        return self.root / source_digest[:2] / f"{source_digest}.json"

    def get(self, source_digest: str, fingerprint: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._path(source_digest).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
            return None
        result = entry.get("result")
        return result if isinstance(result, dict) else None

    def put(self, source_digest: str, fingerprint: str, result: dict[str, Any]) -> None:
        path = self._path(source_digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"fingerprint": fingerprint, "result": result}, out)
            os.replace(name, path)  # readers see the old entry or the new one, whole
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
