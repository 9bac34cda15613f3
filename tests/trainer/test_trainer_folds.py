"""Folds (Gaia master's, reproduced), the grouped artist folds and class balancing."""
import json
import random

from abrunnerd.trainer.folds import artist_folds, balance_classes, gaia_folds
from trainer_paths import need_shared


def test_gaia_folds_hand_case():
    gt = {"r%d" % i: "x" for i in range(6)}
    gt.update({"s%d" % i: "y" for i in range(3)})
    folds = gaia_folds(gt, 5, 7)
    xs = sorted(m for m in gt if gt[m] == "x")
    random.seed(7)
    random.shuffle(xs)
    assert [folds[m] for m in xs] == [0, 0, 1, 1, 2, 2]  # ceil(6/5) = 2 per fold, folds 3-4 empty
    assert sorted(folds[m] for m in gt if gt[m] == "y") == [0, 1, 2]


def test_gaia_folds_reproduce_gaias_best_folds_json():
    dataset = json.loads(need_shared("dataset.json").read_text())
    reference = json.loads(need_shared("gaia-reference", "best_folds.json").read_text())
    gt = {m: c["name"] for c in dataset["classes"] for m in c["recordings"]}
    assert gaia_folds(gt, 5, 42) == reference


def test_artist_folds_never_split_an_artist_and_stay_balanced():
    rng = random.Random(3)
    gt, artists = {}, {}
    for i in range(200):
        mbid = "m%03d" % i
        gt[mbid] = "abc"[i % 3]
        artists[mbid] = None if i % 17 == 0 else "artist%d" % rng.randrange(40)
    folds = artist_folds(gt, artists, 5, 42)
    assert folds == artist_folds(gt, artists, 5, 42)  # deterministic
    by_artist = {}
    for m, a in artists.items():
        if a:
            by_artist.setdefault(a, set()).add(folds[m])
    assert all(len(f) == 1 for f in by_artist.values())
    sizes = [sum(1 for m in folds if folds[m] == f) for f in range(5)]
    assert max(sizes) - min(sizes) <= 12
    for cls in "abc":
        per_fold = [sum(1 for m in folds if folds[m] == f and gt[m] == cls) for f in range(5)]
        assert min(per_fold) > 0
    assert folds != artist_folds(gt, artists, 5, 43)


def test_balance_classes_reduces_to_smallest_class_and_holds_out_the_rest():
    gt = {"a%d" % i: "a" for i in range(10)}
    gt.update({"b%d" % i: "b" for i in range(4)})
    train, held = balance_classes(gt, 1)
    assert sorted(train.values()).count("a") == 4 and sorted(train.values()).count("b") == 4
    assert len(held) == 6 and set(held.values()) == {"a"}
    assert (train, held) == balance_classes(gt, 1)
