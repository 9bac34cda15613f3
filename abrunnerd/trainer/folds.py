"""Cross-validation folds and the training-set selection (spec §2 and §11, decisions.md 2).

Without the artist filter the folds are Gaia master's: for each class, its recordings
sorted, ``random.seed(seed)`` then ``random.shuffle``, fold ``i`` = slice
``[i*k, (i+1)*k)`` with ``k = ceil(n/nfold)`` (reproduces Gaia's ``best_folds.json``).
With the artist filter, recordings of one artist always share a fold.
"""
import random
from typing import Dict, List, Optional, Tuple


def gaia_folds(groundtruth: Dict[str, str], nfold: int, seed: int) -> Dict[str, int]:
    by_class: Dict[str, List[str]] = {}
    for mbid, cls in groundtruth.items():
        by_class.setdefault(cls, []).append(mbid)
    folds = {}
    for cls in sorted(by_class):
        members = sorted(by_class[cls])
        random.seed(seed)
        random.shuffle(members)
        size = (len(members) - 1) // nfold + 1
        for i, mbid in enumerate(members):
            folds[mbid] = i // size
    return folds


def artist_folds(groundtruth: Dict[str, str], artists: Dict[str, Optional[str]], nfold: int,
                 seed: int) -> Dict[str, int]:
    """Grouped, class-stratified folds: no artist in two folds.

    Groups (an artist's recordings; a recording without artist is its own group) are
    shuffled with the seed, then placed largest first into the fold where the group's
    classes are least represented relative to their share (ties: lowest fold index).
    """
    groups: Dict[str, List[str]] = {}
    for mbid in sorted(groundtruth):
        artist = artists.get(mbid)
        key = "artist:" + artist if artist else "recording:" + mbid
        groups.setdefault(key, []).append(mbid)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda k: -len(groups[k]))  # stable: equal sizes keep the shuffled order
    totals: Dict[str, int] = {}
    for cls in groundtruth.values():
        totals[cls] = totals.get(cls, 0) + 1
    load = [dict.fromkeys(totals, 0) for _ in range(nfold)]
    sizes = [0] * nfold
    folds = {}
    for key in keys:
        counts: Dict[str, int] = {}
        for mbid in groups[key]:
            counts[groundtruth[mbid]] = counts.get(groundtruth[mbid], 0) + 1

        def cost(f: int) -> Tuple[float, int, int]:
            share = sum((load[f][c] + n) / float(totals[c]) for c, n in counts.items())
            return share, sizes[f], f

        best = min(range(nfold), key=cost)
        for cls, n in counts.items():
            load[best][cls] += n
        sizes[best] += len(groups[key])
        for mbid in groups[key]:
            folds[mbid] = best
    return folds


def balance_classes(groundtruth: Dict[str, str], seed: int) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Reduce every class at random to the smallest class's size: (train, held out)."""
    by_class: Dict[str, List[str]] = {}
    for mbid, cls in groundtruth.items():
        by_class.setdefault(cls, []).append(mbid)
    smallest = min(len(v) for v in by_class.values())
    rng = random.Random(seed)
    train, held = {}, {}
    for cls in sorted(by_class):
        members = sorted(by_class[cls])
        chosen = set(rng.sample(members, smallest))
        for mbid in members:
            (train if mbid in chosen else held)[mbid] = cls
    return train, held
