"""Would bounds per group of points save ActiveFT's full scans? A
simulation on a sample of the pool and the points' real path, to judge the
idea before building it.

    python3 scripts/activeft_groups.py POOL.npy PATH.bin K ITERATIONS \
        SAMPLES GROUPS CANDIDATES SPREAD SNAPSHOT_EVERY

PATH.bin holds the unit points at the start of each iteration, float32,
ITERATIONS x K x d in C order. The tool does not write it: a scratch build
appends `points.unit32` to a file at the top of each iteration of
`methods::activeft::select_part`. A sample's bounds depend only on its own
row and the points' path, so a random sample of SAMPLES rows tells what the
whole pool would do.

Each sample keeps, from its last full scan, its CANDIDATES best points
(scored exactly at every iteration here, as the engine rescores them when
their bounds reach the winner), and for each of GROUPS groups of points
(k-means over the starting points, fixed for the run) an upper bound on
the scores of the group's points outside the candidates. A group's bound
grows by the largest displacement of its points since the snapshot before
the bound was set, snapshots being taken every SNAPSHOT_EVERY iterations
(as the engine bounds the rest); bounds set by a full scan start SPREAD
above the exact maxima, as a filter's bounds do. When a group's bound
reaches the winner, the group is scored ("a visit") and its bound is set
again; only when one of its points may beat the winner does the sample
take a full scan. Printed: per sample over the run, the full scans (the
first one included), the visits, and the points scored in visits, against
a full scan's K.

Not run in CI.
"""

import sys

import numpy as np
from sklearn.cluster import KMeans

ERROR = 3e-5  # about the fixed-order dot product's error bound at d = 384
CHUNK = 4096


def load(pool, path, k, iterations, samples):
    rows = np.load(pool, mmap_mode="r")
    ids = np.sort(np.random.default_rng(0).choice(rows.shape[0], samples, replace=False))
    features = np.asarray(rows[ids], dtype=np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    points = np.fromfile(path, dtype=np.float32).reshape(-1, k, features.shape[1])[:iterations]
    return features, points


def grouped(points, groups):
    """The points reordered so that each group is a run, and the runs' starts."""
    labels = KMeans(groups, n_init=1, random_state=0).fit(points[0]).labels_
    order = np.argsort(labels, kind="stable")
    labels = labels[order]
    return points[:, order, :], np.r_[0, np.flatnonzero(np.diff(labels)) + 1]


def displacements(points, starts, every):
    """moved[a, b, g]: the largest distance a point of group g went from
    iteration a (a snapshot) to iteration b."""
    iterations = points.shape[0]
    moved = np.zeros((iterations, iterations, len(starts)))
    for a in range(0, iterations, every):
        for b in range(a + 1, iterations):
            gone = np.linalg.norm(points[b].astype(np.float64) - points[a], axis=1)
            moved[a, b] = np.maximum.reduceat(gone, starts)
    return moved


def full_scan(scores, starts, candidates, spread):
    best = np.argpartition(-scores, candidates - 1, axis=1)[:, :candidates]
    rest = scores.copy()
    np.put_along_axis(rest, best, -np.inf, axis=1)
    return best, np.maximum.reduceat(rest, starts, axis=1).astype(np.float64) + spread


def simulate(features, points, starts, moved, candidates, spread, every):
    sizes = np.diff(np.r_[starts, points.shape[1]])
    groups = np.arange(len(starts))[None, :]
    scans = visits = scored = 0
    for c in range(0, len(features), CHUNK):
        rows = features[c : c + CHUNK]
        for t, at in enumerate(points):
            scores = rows @ at.T
            if t == 0:
                best, bound = full_scan(scores, starts, candidates, spread)
                stamp = np.zeros(bound.shape, dtype=np.int64)
                scans += len(rows)
                continue
            winner = np.take_along_axis(scores, best, axis=1).max(1).astype(np.float64)
            snap = stamp // every * every
            now = bound + moved[snap, stamp, groups] + moved[snap, t, groups]
            reached = now >= (winner - ERROR)[:, None]
            who = np.flatnonzero(reached.any(1))
            if who.size == 0:
                continue
            visits += who.size
            scored += (reached[who] * sizes).sum()
            rest = scores[who].copy()
            np.put_along_axis(rest, best[who], -np.inf, axis=1)
            fresh = np.maximum.reduceat(rest, starts, axis=1).astype(np.float64)
            hit = reached[who]
            b, s = bound[who], stamp[who]
            b[hit], s[hit] = fresh[hit], t
            beaten = np.where(hit, fresh, -np.inf).max(1) >= winner[who] - ERROR
            if beaten.any():
                again = who[beaten]
                scans += again.size
                best[again], b[beaten] = full_scan(scores[again], starts, candidates, spread)
                s[beaten] = t
            bound[who], stamp[who] = b, s
    return scans, visits, scored


def main():
    pool, path = sys.argv[1], sys.argv[2]
    k, iterations, samples, groups, candidates = map(int, sys.argv[3:8])
    spread, every = float(sys.argv[8]), int(sys.argv[9])
    features, points = load(pool, path, k, iterations, samples)
    points, starts = grouped(points, groups)
    moved = displacements(points, starts, every)
    scans, visits, scored = simulate(features, points, starts, moved, candidates, spread, every)
    n = len(features)
    print(
        f"{groups} groups, {candidates} candidates, spread {spread}, snapshots every {every}: "
        f"per sample over {points.shape[0]} iterations, {scans / n:.3f} full scans, "
        f"{visits / n:.3f} visits, {scored / n:.0f} points scored in visits (a full scan: {k})"
    )


if __name__ == "__main__":
    main()
