"""Time helpers: AcousticBrainz answers with HTTP-dates."""
import time
from email.utils import formatdate
from typing import Optional


def now() -> float:
    return time.time()


def http_date(ts: Optional[float]) -> Optional[str]:
    """``Wed, 25 Nov 2026 20:04:49 GMT`` (RFC 7231), or None."""
    if ts is None:
        return None
    return formatdate(ts, usegmt=True)
