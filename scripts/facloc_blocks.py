"""Would facility location's estimates stop early if each candidate kept
its gain per block of samples? A simulation on the n x n similarity matrix
(20,000 rows: 1.6 GB), to judge the idea before building it.

    python3 scripts/facloc_blocks.py POOL.npy BUDGET [BLOCKS [STRATEGY]]

The pool is cut into BLOCKS blocks (16 by default) by a few rounds of
spherical k-means, so that a pick's served samples gather in few blocks.
Each candidate keeps its gain's part from every block, each part set at
some pick: gains only shrink, so every old part bounds the part now and
their sum is the candidate's key. A block whose samples have not been
served better since a part was set still has that part exactly. So a
stale candidate's key can be refreshed a block at a time, the blocks that
gained most coverage since its parts were set first, and the refresh can
stop as soon as the key falls below the key it has to beat.

The unit is the score, one candidate-by-sample similarity, counted as
`scripts/facloc_work.py` counts them (only unresolved samples cost a
score; the full round after the first pick costs half of n a candidate).
Printed, beside the lazy greedy as built (or only the STRATEGY named):

- best first: one candidate at a time, the leading one, refreshed until
  its key falls below the second key (the fewest scores, but products of
  one candidate);
- leading m: the m leading keys refreshed together, each candidate
  taking its own next block, the candidates wanting the same block
  multiplied together (products of that many candidates);
- two phases: the 64 leading stale candidates refreshed whole (their
  gains are then a lower bound on the pick's), then batches of 256 block
  by block, dropping each candidate whose key falls below that bound.

Not run in CI.
"""

import sys

import numpy as np

from facloc_work import LISTED, WIDER, lazy

BATCH = 256
FIRST = 64


def spherical_kmeans(x, blocks, rounds=8, seed=0):
    """Block of each row."""
    rng = np.random.default_rng(seed)
    centres = x[rng.choice(len(x), blocks, replace=False)]
    for _ in range(rounds):
        nearest = np.argmax(x @ centres.T, axis=1)
        for b in range(blocks):
            members = x[nearest == b]
            if len(members):
                total = members.sum(0)
                centres[b] = total / np.linalg.norm(total)
    return np.argmax(x @ centres.T, axis=1)


class Blocked:
    """The greedy's state with a part of each key per block; rows of `s`
    are ordered so that each block is a slice."""

    def __init__(self, s, beyond, edges):
        n, blocks = len(s), len(edges) - 1
        self.s, self.beyond = s, beyond
        self.slices = [slice(edges[b], edges[b + 1]) for b in range(blocks)]
        self.cover = np.full(n, -1.0, np.float32)
        self.key = s.sum(0).astype(np.float64) + n
        self.part = np.zeros((n, blocks))
        self.stamp = np.full((n, blocks), -1)
        self.changed_at = np.full(blocks, -1)
        # Coverage gained per block, summed over the picks so far.
        self.rises = np.zeros((1, blocks))
        self.taken = np.zeros(n, bool)
        self.scores, self.products, self.columns = 0.0, 0, 0
        self.pick = 0

    def start_pick(self):
        unresolved = self.cover < self.beyond
        self.unresolved = np.array([int(unresolved[q].sum()) for q in self.slices])
        if self.pick == 1:
            n = len(self.s)
            for b, q in enumerate(self.slices):
                self.part[:, b] = np.maximum(0, self.s[:, q] - self.cover[q]).sum(1)
            self.stamp[:] = 1
            self.key = self.part.sum(1)
            self.scores += (n - 1) * n / 2

    def stale(self, ids):
        """Which of the blocks of candidates `ids` changed since set."""
        return self.changed_at[None, :] >= self.stamp[ids]

    def fall(self, ids):
        """Coverage gained in each block since each part of `ids` was set:
        a bound on the part's fall, used to order the blocks."""
        blocks = np.arange(len(self.slices))[None, :]
        return (self.rises[-1][None, :] - self.rises[self.stamp[ids], blocks]) * self.stale(ids)

    def refresh(self, ids, b):
        """One product: block `b`'s part of the candidates `ids`."""
        if len(ids) == 0:
            return
        q = self.slices[b]
        self.part[ids, b] = np.maximum(0, self.s[ids][:, q] - self.cover[q]).sum(1)
        self.stamp[ids, b] = self.pick
        self.key[ids] = self.part[ids].sum(1)
        self.scores += len(ids) * self.unresolved[b]
        self.products += 1
        self.columns += len(ids)

    def ranked(self, count):
        """The `count` leading untaken candidates, leading key first."""
        keys = np.where(self.taken, -np.inf, self.key)
        count = min(count, len(keys) - self.pick)
        top = np.argpartition(-keys, count - 1)[:count]
        return top[np.lexsort((top, -keys[top]))]

    def take(self, j):
        self.taken[j] = True
        served = np.maximum(self.cover, self.s[j])
        rise = np.array([(served - self.cover)[q].sum() for q in self.slices])
        self.changed_at[rise > 0] = self.pick
        self.rises = np.vstack([self.rises, self.rises[-1] + rise])
        self.cover = served
        self.pick += 1


def run(g, budget, step, count):
    """The greedy on `g`, `step(g, ranked)` refreshing some of the `count`
    leading keys until the leading one is current."""
    for _ in range(budget):
        g.start_pick()
        while g.pick > 0:
            ranked = g.ranked(count)
            if not g.stale(ranked[:1]).any():
                break
            step(g, ranked)
        g.take(g.ranked(1)[0])
    return g


def best_first(g, ranked):
    j, second = ranked[0], g.key[ranked[1]]
    stale = np.flatnonzero(g.stale([j])[0])
    for b in stale[np.argsort(-g.fall([j])[0, stale], kind="stable")]:
        g.refresh(np.array([j]), b)
        if g.key[j] < second:
            return


def leading(m):
    def step(g, ranked):
        top = ranked[:m]
        stale = g.stale(top)
        wants = np.argmax(g.fall(top), axis=1)
        for b in np.unique(wants[stale.any(1)]):
            g.refresh(top[(wants == b) & stale[:, b]], b)

    return step


def two_phases(g, ranked):
    stale = g.stale(ranked).any(1)
    everyone = np.flatnonzero(~g.taken)
    current = everyone[~g.stale(everyone).any(1)]
    if len(current) == 0:
        # No gain is known at this pick yet: the leaders' whole gains.
        whole = ranked[stale][:FIRST]
        for b in range(len(g.slices)):
            g.refresh(whole[g.stale(whole)[:, b]], b)
        return
    # Known gains bound the pick's from below: keys under it can stop.
    low = g.key[current].max()
    batch = ranked[stale & (g.key[ranked] >= low)][:BATCH]
    for b in np.argsort(-g.fall(batch).sum(0), kind="stable"):
        g.refresh(batch[(g.key[batch] >= low) & g.stale(batch)[:, b]], b)
        current = batch[~g.stale(batch).any(1)]
        if len(current):
            low = max(low, g.key[current].max())


def main():
    pool, budget = sys.argv[1], int(sys.argv[2])
    blocks = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    x = np.load(pool).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    block_of = spherical_kmeans(x, blocks)
    x = x[np.argsort(block_of, kind="stable")]
    edges = np.concatenate([[0], np.cumsum(np.bincount(block_of, minlength=blocks))])
    s = x @ x.T
    ranked = -np.sort(-s, axis=1)[:, : max(WIDER)]
    beyond = ranked[:, LISTED - 1]
    # The lazy greedy as built, as scripts/facloc_work.py counts it.
    base = lazy(s, budget, {w: ranked[:, w - 1] for w in (LISTED, *WIDER)})[0][:, 1].sum()
    print(f"{pool}: {len(x)} x {x.shape[1]}, budget {budget}, {blocks} blocks")
    print(f"as built: {base / 1e6:.0f} M scores")
    for name, step, count in (("best first", best_first, 2), ("leading 64", leading(64), 64),
                              ("leading 256", leading(256), 256), ("two phases", two_phases, 8 * BATCH)):
        if len(sys.argv) > 4 and name != sys.argv[4]:
            continue
        g = run(Blocked(s, beyond, edges), budget, step, count)
        print(f"{name}: {g.scores / 1e6:.0f} M scores ({g.scores / base:.2f} x),"
              f" {g.products} products of {g.columns / max(g.products, 1):.0f} candidates on average")


if __name__ == "__main__":
    main()
