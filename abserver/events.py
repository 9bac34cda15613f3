"""A job's status history (table ``job_events``): appended where ``jobs.py`` changes the job.

Written in the same transaction as the change it records, so the history never shows a
transition that did not happen; read by the owner's job page (``abserver/web``).
"""
import json
from typing import Any, Dict, List, Optional

import sqlalchemy as sa

from .tables import job_events
from .timefmt import now

KINDS = ("submitted", "built", "claimed", "resumed", "ping", "stalled", "unstalled", "done", "failed", "canceled")
MAX_TEXT = 500  # per string value; a failure reason may be 4000 characters
_INSERT = sa.text("INSERT INTO job_events (job_id, at, kind, detail) VALUES (:job_id, :at, :kind, :detail)")


def record(conn, job_id: str, kind: str, detail: Optional[Dict[str, Any]] = None) -> None:
    assert kind in KINDS, kind
    if detail:
        detail = {k: v[:MAX_TEXT] if isinstance(v, str) else v for k, v in detail.items()}
    text = json.dumps(detail, sort_keys=True) if detail else None
    conn.execute(_INSERT, {"job_id": job_id, "at": now(), "kind": kind, "detail": text})


def history(conn, job_id: str, pings: int = 100, others: int = 500) -> List[Dict[str, Any]]:
    """The job's transitions (up to ``others``) and its latest ``pings`` pings, oldest first.

    A long job pings hundreds of times; its claims, stalls and ending stay in view anyway.
    The caller checked ownership."""
    base = sa.select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id.desc())
    rows = list(conn.execute(base.where(job_events.c.kind == "ping").limit(pings)))
    rows += list(conn.execute(base.where(job_events.c.kind != "ping").limit(others)))
    out = []
    for row in sorted(rows, key=lambda r: r.id):
        try:
            detail = json.loads(row.detail) if row.detail else {}
        except ValueError:
            detail = {}
        out.append({"at": row.at, "kind": row.kind, "detail": detail if isinstance(detail, dict) else {}})
    return out


def count(conn, job_id: str) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(job_events)
                            .where(job_events.c.job_id == job_id)).scalar() or 0)
