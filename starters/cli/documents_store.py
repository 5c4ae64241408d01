"""Keeping a final post-mortem file under the data directory, known by path and hash.

The workflow records only the path and the SHA-256 (documents do not belong in
workflow payloads); the copy is named by the incident and the hash, so keeping
the same file twice writes it once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from domain.models import StoredDocument

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
"""Largest post-mortem file kept (a document, not an archive)."""


class DocumentError(ValueError):
    """The file cannot be kept; the message says why."""


def keep_document(source: Path, incident_id: str, data_dir: Path) -> StoredDocument:
    """Copy ``source`` to ``<data_dir>/postmortems/final/`` and describe the copy."""
    try:
        size = source.stat().st_size
        if not source.is_file():
            raise DocumentError(f"{source} is not a file")
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentError(
                f"{source} is {size:,} bytes; at most {MAX_DOCUMENT_BYTES:,} are kept "
                "(link a large document with --url instead)"
            )
        content = source.read_bytes()
    except OSError as error:
        raise DocumentError(f"cannot read {source}: {error.strerror or error}") from None
    digest = hashlib.sha256(content).hexdigest()
    suffix = "".join(ch for ch in source.suffix if ch.isalnum() or ch == ".")[:10]
    target_dir = data_dir / "postmortems" / "final"
    target = target_dir / f"{incident_id}-{digest[:12]}{suffix}"
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        if not (target.exists() and target.stat().st_size == len(content)):
            # Written whole or not at all: a crash never leaves half a document.
            with tempfile.NamedTemporaryFile(dir=target_dir, delete=False) as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, target)
    except OSError as error:
        raise DocumentError(f"cannot keep {source} in {target_dir}: {error}") from None
    return StoredDocument(path=str(target.resolve()), sha256=digest, size=len(content))
