"""Per-result cache of derived files (plots, predictions) in ``web_renders``, gzip-compressed.

Keyed by job and name and tied to the upload's digest, so a result is drawn once and
shared by every worker; the stored bytes are served as they are to clients that accept
gzip.
"""
import gzip
import logging
from typing import Callable

import sqlalchemy as sa

from ..tables import web_renders
from ..timefmt import now

log = logging.getLogger("abserver.web")


def cached(engine: sa.engine.Engine, job_id: str, upload_sha256: str, name: str,
           make: Callable[[], bytes]) -> bytes:
    """The gzip-compressed bytes of ``name`` for this upload, made by ``make()`` the first time."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(web_renders.c.data).where(
            web_renders.c.job_id == job_id, web_renders.c.name == name,
            web_renders.c.upload_sha256 == upload_sha256)).first()
    if row is not None:
        return bytes(row.data)
    data = gzip.compress(make(), compresslevel=6, mtime=0)
    try:
        with engine.begin() as conn:
            conn.execute(web_renders.delete().where(web_renders.c.job_id == job_id, web_renders.c.name == name))
            conn.execute(web_renders.insert().values(job_id=job_id, name=name, upload_sha256=upload_sha256,
                                                     data=data, created=now()))
    except sa.exc.IntegrityError:
        log.debug("render %s of job %s stored concurrently", name, job_id)
    return data
