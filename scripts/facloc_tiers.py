"""How many gain evaluations facility location's lazy greedy needs when its
first estimate comes from a cheaper, looser filter: a simulation, to judge
a filter before writing its kernel.

    python3 scripts/facloc_tiers.py POOL.npy BUDGET [BITS ...]

For each BITS (8, 12, ...; 0 means no cheaper tier), rows are rounded to
signed integer codes of that many bits with one scale per row, as
`linalg/codes.rs` does for 8 bits, and each similarity is bounded from
above by the codes' estimate plus the two rows' residual norms (the proven
bound's size). The greedy keeps a key per candidate: stale (from an earlier
pick), then the coded bound, then the float32 estimate, taken here as the
exact gain, which decides the pick. It prints, per BITS, how many coded and how many
float32 estimates the picks needed, against the plain lazy greedy's float32
estimates. Needs the n x n similarity matrix in memory (20,000 rows: 1.6 GB),
so it is for pools of that size. Not run in CI.
"""

import heapq
import sys

import numpy as np


def coded(x, bits):
    """Upper bounds on the similarities from codes of `bits` bits."""
    levels = 2 ** (bits - 1) - 1
    scale = np.abs(x).max(1) / levels
    q = np.round(x / scale[:, None])
    radius = np.linalg.norm(x - q * scale[:, None], axis=1) * 1.0001
    estimate = (q @ q.T) * scale[:, None] * scale[None, :]
    return (estimate + radius[:, None] + radius[None, :]).astype(np.float32)


def greedy(s, budget, bound):
    """Picks `budget` samples; returns (coded estimates, float32 estimates)."""
    n = len(s)
    coverage = np.full(n, -1.0, np.float32)
    first = s.sum(0) + n
    heap = [(-float(g), j, 0, 0) for j, g in enumerate(first)]
    heapq.heapify(heap)
    counts = [0, 0]
    for pick in range(budget):
        while True:
            key, j, stamp, tier = heapq.heappop(heap)
            tier = tier if stamp == pick else 0
            if bound is None and tier == 0:
                tier = 1
            if tier == 2:
                break
            column = bound[:, j] if tier == 0 else s[:, j]
            key = np.maximum(0, column - coverage).sum()
            counts[tier] += 1
            heapq.heappush(heap, (-float(key), j, pick, tier + 1))
        coverage = np.maximum(coverage, s[:, j])
    return counts


def main():
    pool, budget, *bits = sys.argv[1:]
    x = np.load(pool).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    for b in [int(b) for b in bits] or [0]:
        counts = greedy(s, int(budget), coded(x, b) if b else None)
        print(f"bits {b or 'none'}: coded estimates {counts[0]}, float32 estimates {counts[1]}")


if __name__ == "__main__":
    main()
