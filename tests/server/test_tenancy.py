"""Issue 17, case 1: documents belong to their owner (decisions 7b).

Bob stores a poisoned document for a recording before alice imports a dataset naming it:
alice's import stores her own document and says so, her upload of it is accepted, her job
trains on her numbers, and nobody reads a private dataset's documents."""
import json
import shutil
import uuid

import numpy as np
import requests
from helpers.server import EXAMPLE_DATASET, ServerProcess

from abrunnerd.trainer.bundle import dataset_from_bundle
from abserver.datasets import document_id

DOC_DIR = EXAMPLE_DATASET / "lowlevel"


def _copy_dataset(tmp_path, name, public):
    """The example dataset under fresh MBIDs (so this test owns them), as an import directory."""
    data = json.loads((EXAMPLE_DATASET / "dataset.json").read_text())
    data.pop("id", None)
    data["name"], data["public"] = name, public
    (tmp_path / "lowlevel").mkdir(parents=True)
    mapping = {}
    for cls in data["classes"]:
        cls["recordings"] = [mapping.setdefault(m, str(uuid.uuid4())) for m in cls["recordings"]]
    for old, new in mapping.items():
        shutil.copy(DOC_DIR / ("%s.json" % old), tmp_path / "lowlevel" / ("%s.json" % new))
    (tmp_path / "dataset.json").write_text(json.dumps(data))
    return data


def _low_level(srv, token, mbid):
    r = requests.get(srv.url("/low-level"), params={"recording_ids": mbid}, headers=srv.auth(token))
    assert r.status_code == 200, r.text
    return r.json().get(mbid, {}).get("0")


def test_another_owners_earlier_document_does_not_poison_an_import(world, tmp_path):
    srv = world.srv
    data = _copy_dataset(tmp_path / "ds", "tenancy", public=False)
    victim = data["classes"][0]["recordings"][0]
    genuine = json.loads((tmp_path / "ds" / "lowlevel" / ("%s.json" % victim)).read_text())
    poisoned = {"lowlevel": {"poison": {"mean": 1000.0}}, "metadata": {}}
    r = requests.put(srv.url("/low-level/%s" % victim), json=poisoned, headers=srv.auth(world.bob))
    assert r.status_code == 200, r.text

    done = srv.admin("import-dataset", str(tmp_path / "ds"), "--owner", "alice", "--verbose")
    dataset_id = done.stdout.strip()
    assert "imported 60 low-level documents of alice (60 new" in done.stderr, done.stderr
    assert "%s  stored" % victim in done.stderr, "the import says what it did per recording"

    again = requests.put(srv.url("/low-level/%s" % victim), json=genuine, headers=srv.auth(world.alice))
    assert again.status_code == 200, "alice may (re)store her own document: %s" % again.text
    assert _low_level(srv, world.alice, victim) == genuine
    assert _low_level(srv, world.bob, victim) == poisoned, "bob reads his own copy only"

    job = srv.submit(dataset_id, "--remote", "--c-values", "1", "--gamma-values", "-3", "--preprocessing", "basic")
    bundle = requests.get(srv.url("/datasets/evaluation/jobs/%s/features" % job), headers=srv.auth(world.alice))
    assert bundle.status_code == 200
    groundtruth = {m: c["name"] for c in data["classes"] for m in c["recordings"]}
    trained_on = dataset_from_bundle(bundle.content, "tenancy", groundtruth).merged  # what the runner trains on
    names = [d.name for d in trained_on.raw_layout.descriptors]
    assert ".lowlevel.poison.mean" not in names
    assert {n.split(".")[2] for n in names if n.startswith(".lowlevel.")} == set(genuine["lowlevel"])
    row = trained_on.frame.ids.index(victim)
    assert trained_on.frame.values[".lowlevel.spectral_centroid.mean"][row, 0] == np.float32(
        genuine["lowlevel"]["spectral_centroid"]["mean"]), "alice's own values, not bob's"


def test_low_level_serves_own_and_public_documents_only(world, tmp_path):
    srv = world.srv
    private = _copy_dataset(tmp_path / "private", "private", public=False)
    public = _copy_dataset(tmp_path / "public", "public", public=True)
    srv.admin("import-dataset", str(tmp_path / "private"), "--owner", "alice")
    srv.admin("import-dataset", str(tmp_path / "public"), "--owner", "alice")
    hidden, shown = private["classes"][0]["recordings"][0], public["classes"][0]["recordings"][0]
    assert _low_level(srv, world.alice, hidden) is not None
    assert _low_level(srv, world.bob, hidden) is None, "a private dataset's document leaked to another owner"
    assert _low_level(srv, world.bob, shown) == _low_level(srv, world.alice, shown)


def test_documents_without_mbid_get_a_deterministic_id_per_owner():
    """decisions 7c: uuid5 of (owner, original key); the key is a name, never a path."""
    a = document_id(1, "voice/track 01.json")
    assert a == document_id(1, "voice/track 01.json") and str(uuid.UUID(a)) == a
    assert a != document_id(2, "voice/track 01.json")
    assert uuid.UUID(a).version == 5


def test_import_names_missing_documents_and_a_list_of_artists_is_one_clear_line(tmp_path):
    with ServerProcess(tmp_path / "srv") as srv:
        srv.add_user("carol")
        data = _copy_dataset(tmp_path / "ds", "missing", public=False)
        gone = data["classes"][1]["recordings"][0]
        (tmp_path / "ds" / "lowlevel" / ("%s.json" % gone)).unlink()
        done = srv.admin("import-dataset", str(tmp_path / "ds"), "--owner", "carol")
        assert "%s  no document" % gone in done.stderr and "1 recordings have no document" in done.stderr
        (tmp_path / "ds" / "artists.json").write_text('["not", "a", "mapping"]')
        bad = srv.admin("import-dataset", str(tmp_path / "ds"), "--owner", "carol", check=False)
        assert bad.returncode == 65 and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "artists.json must be an object" in bad.stderr
