"""The checkpoint log: one JSON line per finished grid cell, fsync'd, resumable.

The first line is ``{"fingerprint": ...}`` (dataset + options + trainer version).  A log
with another fingerprint is set aside as ``<path>.stale`` and a new one started; a torn
last line (a crash mid-write) is cut off.  A restart skips every cell already logged.
"""
import json
import os
from typing import Dict, Optional, Tuple

from abrunnerd.trainer.cells import CellOutcome

CellKey = Tuple  # (preprocessing, kernel, C, gamma, balanceClasses or None, fold)
FORMAT = 1


def _key(record: dict) -> CellKey:
    b = record.get("b")
    return (record["p"], record["k"], int(record["C"]), int(record["g"]), None if b is None else bool(b),
            int(record["f"]))


class Checkpoint:
    """Append-only cell log; ``done`` maps every logged cell to its outcome."""

    def __init__(self, path: Optional[str], fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.done: Dict[CellKey, CellOutcome] = {}
        self.discarded: Optional[str] = None  # why an existing log was not used
        self._file = None
        if path:
            self._open()

    def _open(self) -> None:
        good_end = self._read()
        if good_end is None:
            if os.path.exists(self.path):
                os.replace(self.path, self.path + ".stale")
            self._file = open(self.path, "wb")
            self._write({"fingerprint": self.fingerprint, "format": FORMAT})
        else:
            self._file = open(self.path, "r+b")
            self._file.truncate(good_end)
            self._file.seek(good_end)

    def _read(self) -> Optional[int]:
        """Byte offset after the last complete record, or None when the log is unusable."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        lines = data.split(b"\n")
        offset = 0
        for i, line in enumerate(lines[:-1]):  # the part after the last newline is torn or empty
            try:
                record = json.loads(line.decode("utf-8"))
                if i == 0:
                    if record.get("fingerprint") != self.fingerprint or record.get("format") != FORMAT:
                        self.discarded = "the checkpoint belongs to another dataset, options or trainer version"
                        return None
                else:
                    self.done[_key(record)] = CellOutcome(
                        bool(record["ok"]), int(record.get("correct", 0)), int(record.get("total", 0)),
                        record.get("cm") or [], record.get("error"), float(record.get("s", 0.0)))
            except (ValueError, KeyError, TypeError, AttributeError):
                if i == 0:
                    self.discarded = "the checkpoint's header is unreadable"
                    return None
                break  # a damaged record: keep what came before it
            offset += len(line) + 1
        if offset == 0:
            self.discarded = "the checkpoint is empty"
            return None
        return offset

    def _write(self, record: dict) -> None:
        self._file.write(json.dumps(record, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def add(self, key: CellKey, outcome: CellOutcome) -> None:
        self.done[key] = outcome
        if self._file is None:
            return
        p, k, c, g, b, f = key
        record = {"p": p, "k": k, "C": c, "g": g, "f": f, "ok": outcome.ok, "s": round(outcome.seconds, 4)}
        if b is not None:
            record["b"] = b
        if outcome.ok:
            record.update(correct=outcome.correct, total=outcome.total, cm=outcome.confusion)
        else:
            record["error"] = outcome.error
        self._write(record)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
