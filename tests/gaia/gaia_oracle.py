"""Paths of the Gaia test data and the Essentia oracle runner, shared by tests/gaia (import by this name)."""
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
REFERENCE_DIR = SHARED_DATA / "ab-real-1" / "gaia-reference"
REFERENCE_HISTORY = REFERENCE_DIR / "ab-real-1.history"
AB_REAL_1 = SHARED_DATA / "ab-real-1"
AB_REAL_SMALL = REPO / "examples" / "ab-real-small"
ORACLE_SCRIPT = REPO / "tools" / "essentia-oracle-venv"
ORACLE_WORKER = Path(__file__).resolve().parent / "oracle_worker.py"


class Oracle:
    """Runs ``oracle_worker.py`` in the Essentia venv: one fresh GaiaTransform per document.

    Documents are split over (at most) two worker processes, the machine's core budget.
    """

    WORKERS = 2

    def __init__(self, python: str) -> None:
        self.python = python

    def apply(self, history: Path, documents: List[Path]) -> Dict[str, dict]:
        """{document path: output pool} for one history."""
        return self.apply_many([history], documents)[str(history)]

    def apply_many(self, histories: List[Path], documents: List[Path]) -> Dict[str, Dict[str, dict]]:
        """{history path: {document path: output pool}}; each document is loaded once per worker."""
        docs = [str(d) for d in documents]
        chunks = [docs[i::self.WORKERS] for i in range(self.WORKERS) if docs[i::self.WORKERS]]
        with tempfile.TemporaryDirectory() as tmp:
            procs = []
            for i, chunk in enumerate(chunks):
                out = open(os.path.join(tmp, "out%d.json" % i), "w+")
                err = open(os.path.join(tmp, "err%d.txt" % i), "w+")
                cmd = [self.python, str(ORACLE_WORKER)] + [str(h) for h in histories] + ["--"] + chunk
                procs.append((subprocess.Popen(cmd, stdout=out, stderr=err), out, err))
            results = {str(h): {} for h in histories}  # type: Dict[str, Dict[str, dict]]
            for proc, out, err in procs:
                try:
                    rc = proc.wait(timeout=1800)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                out.seek(0)
                err.seek(0)
                assert rc == 0, "oracle worker failed: %s" % err.read()[-2000:]
                for h, pools in json.loads(out.read()).items():
                    results[h].update(pools)
                out.close()
                err.close()
        return results

    @staticmethod
    def svm_output(pool: dict, class_name: str) -> dict:
        """Essentia's probability output for ``class_name`` as {"value", "all": {label: p}}."""
        assert "error" not in pool, "GaiaTransform failed: %s" % pool.get("error")
        prefix = class_name + ".all."
        expected = {class_name + ".value", class_name + ".probability"}
        assert expected <= set(pool), "unexpected GaiaTransform output keys %s" % sorted(pool)
        probs = {k[len(prefix):]: v for k, v in pool.items() if k.startswith(prefix)}
        assert set(pool) == expected | {prefix + label for label in probs}, sorted(pool)
        return {"value": pool[class_name + ".value"], "all": probs}
