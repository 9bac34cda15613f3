"""A size-limited tmpfs for work_dir, and a ballast file to fill it on demand.

tmpfs with ``size=`` returns ENOSPC exactly like a full disk, needs no loop device
and leaves nothing behind when unmounted.  Needs root (mount).
"""
import atexit
import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

_mounted: List[str] = []


def available() -> Optional[str]:
    """None when small filesystems can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "mounting a size-limited tmpfs needs root"
    return None


class SmallFs:
    """``with SmallFs(8 << 20) as fs:`` -> ``fs.path`` is a mounted tmpfs of that size."""

    def __init__(self, size_bytes: int) -> None:
        self.size = size_bytes
        self.path = Path(tempfile.mkdtemp(prefix="abr-smallfs-"))
        self.ballast = self.path / ".ballast"

    def __enter__(self) -> "SmallFs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % self.size,
                        "abr-smallfs", str(self.path)], check=True, capture_output=True)
        _mounted.append(str(self.path))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if str(self.path) in _mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            _mounted.remove(str(self.path))
        shutil.rmtree(self.path, ignore_errors=True)

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes: int = 0) -> None:
        """Grow the ballast until at most ``leave_bytes`` stay free (ENOSPC ends it)."""
        chunk = b"\0" * (64 << 10)
        with open(self.ballast, "ab") as f:
            while self.free_bytes() > leave_bytes:
                want = min(len(chunk), self.free_bytes() - leave_bytes)
                try:
                    f.write(chunk[:max(want, 1)])
                    f.flush()
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        break
                    raise

    def release(self) -> None:
        """Give the space back."""
        try:
            self.ballast.unlink()
        except FileNotFoundError:
            pass


@atexit.register
def _cleanup() -> None:
    for path in list(_mounted):
        subprocess.run(["umount", "-l", path], capture_output=True)
        _mounted.remove(path)
