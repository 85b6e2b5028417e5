"""Writing report files so that a reader never sees a half-written one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bwsk.errors import BwskError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike[str], target: Path) -> None:
    """Give a finished temporary file ordinary permissions and rename it over ``target``."""
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a report is for sharing
    os.replace(tmp, target)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place.

    A crash or Ctrl-C mid-write leaves the previous file (or none), never a truncated one.
    """
    target = Path(path)
    if target.is_dir():
        raise BwskError(f"cannot write {target}: it is a directory")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise BwskError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        publish(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BwskError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
