"""The one bounded walk every reader of parsed JSON/YAML uses (abrunnerd/treelimits.py), and the
refusals the two readers word from it."""
import pytest

from abrunnerd.documents import DocumentError, check_tree
from abrunnerd.trainer import input_files
from abrunnerd.trainer.errors import DatasetError
from abrunnerd.treelimits import TreeLimitExceeded, check_tree_limits


def _kind(value, max_nodes=100, max_depth=5, key_ok=lambda k: isinstance(k, str)):
    with pytest.raises(TreeLimitExceeded) as info:
        check_tree_limits(value, max_nodes, max_depth, key_ok)
    return info.value


def test_within_the_limits_passes():
    check_tree_limits({"a": [1, 2, {"b": "c"}]}, 6, 3, lambda k: isinstance(k, str))


def test_each_limit_is_reported_by_kind():
    assert _kind([[], list(range(200))]).kind == "nodes"
    assert _kind(list(range(200))).kind == "nodes"  # leaves of the last container walked count too
    deep = []
    for _ in range(10):
        deep = [deep]
    assert _kind(deep).kind == "depth"
    bad = _kind({"a": 1, 7: 2})
    assert (bad.kind, bad.key) == ("key", 7)


def test_shared_alias_counts_each_time_it_is_reached():
    shared = list(range(30))
    assert _kind({"0": [], "a": shared, "b": shared, "c": shared, "d": shared}).kind == "nodes"


def test_readers_refuse_a_flat_list_past_the_bound(monkeypatch):
    monkeypatch.setattr(input_files, "MAX_NODES", 50)
    with pytest.raises(DatasetError, match="holds more than 50 values"):
        input_files.check_tree(list(range(60)), "f.yaml", "filelist")


def test_readers_word_the_refusal_for_their_users():
    with pytest.raises(DocumentError, match="key 7 is not a string"):
        check_tree({7: 1})
    with pytest.raises(DatasetError, match="groundtruth g.yaml has a key of type float"):
        input_files.check_tree({1.5: "x"}, "g.yaml", "groundtruth")
    deep = {}
    for _ in range(input_files.MAX_DEPTH + 1):
        deep = {"k": deep}
    with pytest.raises(DatasetError, match="nests deeper than %d levels" % input_files.MAX_DEPTH):
        input_files.check_tree(deep, "p.yaml", "project")
    # an int key is a plain groundtruth id there, a bool is not
    input_files.check_tree({1: "x"}, "g.yaml", "groundtruth")
    with pytest.raises(DatasetError, match="type bool"):
        input_files.check_tree({True: "x"}, "g.yaml", "groundtruth")
