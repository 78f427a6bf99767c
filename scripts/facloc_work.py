"""Where facility location's lazy greedy spends its work, and what three
ways of spending less would save: a simulation on the n x n similarity
matrix (20,000 rows: 1.6 GB), to judge an idea before building it.

    python3 scripts/facloc_work.py POOL.npy BUDGET

The unit is the score: one candidate-by-sample similarity in a product.
As built, estimating a stale candidate scores it against every unresolved
sample (one whose coverage is below its 64th most similar candidate); the
full round after the first pick counts half of n scores per candidate, as
its tiles are read both ways. Keys are exact float32 gains here, so the
counts are the float32 estimates', without the float64 tier. Printed:

- estimates and scores per range of picks, as built;
- the scores with lists of 128, 256 and 512 candidates per sample (wider
  lists resolve samples sooner, for 16 bytes a sample and entry);
- revisiting: a candidate's new estimate from its last one, scoring only
  the samples touched since that were unresolved then, when they are fewer
  than the unresolved ones now (a lower bound: it ignores that a batch's
  candidates were last estimated at different picks);
- sweeping: after each pick, the exact fall of the leading candidates'
  keys from the samples served better, so hardly any estimate is needed,
  against the scores the sweep costs (every candidate, or the 2,000 with
  the highest keys).

Not run in CI.
"""

import sys

import numpy as np

LISTED = 64
WIDER = (128, 256, 512)
RANGES = ((0, 2), (2, 10), (10, 50), (50, 100), (100, 200), (200, None))


def lazy(s, budget, beyond):
    """The lazy greedy as built; returns its counters."""
    n = len(s)
    coverage = np.full(n, -1.0, np.float32)
    key = s.sum(0).astype(np.float64) + n
    stamp = np.full(n, -1)
    taken = np.zeros(n, bool)
    changed_at = np.full(n, -1)
    resolved_at = np.full(n, budget)
    per_pick = np.zeros((budget, 2))
    wider = dict.fromkeys(WIDER, 0.0)
    revisit = 0.0
    for pick in range(budget):
        unresolved = coverage < beyond[LISTED]
        count = int(unresolved.sum())
        while True:
            j = int(np.argmax(np.where(taken, -np.inf, key)))
            if stamp[j] == pick:
                break
            key[j] = np.maximum(0, s[:, j] - coverage).sum()
            full_round = pick == 1
            scores = n / 2 if full_round else count
            per_pick[pick] += (1, scores)
            for width in WIDER:
                wider[width] += n / 2 if full_round else int((coverage < beyond[width]).sum())
            if stamp[j] >= 0 and not full_round:
                touched = (changed_at >= stamp[j]) & (resolved_at >= stamp[j])
                revisit += min(int(touched.sum()), count)
            else:
                revisit += scores
            stamp[j] = pick
        taken[j] = True
        served = np.maximum(coverage, s[:, j])
        changed = served > coverage
        changed_at[changed] = pick
        now_resolved = changed & (served >= beyond[LISTED]) & unresolved
        resolved_at[now_resolved] = pick
        coverage = served
    return per_pick, wider, revisit


def sweeping(s, budget, beyond, hot):
    """The greedy with every (or the `hot` leading) key lowered by its
    exact fall after each pick; returns (estimates, their scores, the
    sweeps' scores)."""
    n = len(s)
    coverage = np.full(n, -1.0, np.float32)
    key = s.sum(0).astype(np.float64) + n
    stamp = np.full(n, -1)
    taken = np.zeros(n, bool)
    estimates, scores, swept = 0, 0, 0
    for pick in range(budget):
        count = int((coverage < beyond).sum())
        while True:
            j = int(np.argmax(np.where(taken, -np.inf, key)))
            if stamp[j] == pick:
                break
            key[j] = np.maximum(0, s[:, j] - coverage).sum()
            stamp[j] = pick
            estimates += 1
            scores += count
        taken[j] = True
        served = np.maximum(coverage, s[:, j])
        changed = np.flatnonzero(served > coverage)
        candidates = np.flatnonzero(~taken)
        if hot is not None:
            candidates = candidates[np.argsort(-key[candidates], kind="stable")[:hot]]
        block = s[np.ix_(changed, candidates)]
        rise = (served - coverage)[changed, None]
        key[candidates] -= np.clip(block - coverage[changed, None], 0, rise).sum(0)
        # The first pick's sweep stands in for the full round: half.
        swept += len(changed) * len(candidates) / (2 if pick == 0 else 1)
        coverage = served
    return estimates, scores, swept


def main():
    pool, budget = sys.argv[1], int(sys.argv[2])
    x = np.load(pool).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    ranked = -np.sort(-s, axis=1)[:, : max(WIDER)]
    beyond = {w: ranked[:, w - 1] for w in (LISTED, *WIDER)}
    per_pick, wider, revisit = lazy(s, budget, beyond)
    total = per_pick[:, 1].sum()
    print(f"{pool}: {len(x)} x {x.shape[1]}, budget {budget}")
    print(f"as built: {per_pick[:, 0].sum():.0f} estimates, {total / 1e6:.0f} M scores")
    for lo, hi in RANGES:
        part = per_pick[lo:hi].sum(0)
        print(f"  picks {lo}-{hi or budget}: {part[0]:.0f} estimates, {part[1] / 1e6:.0f} M scores")
    for width, scores in wider.items():
        print(f"lists of {width}: {scores / 1e6:.0f} M scores ({scores / total:.2f} x)")
    print(f"revisiting: {revisit / 1e6:.0f} M scores ({revisit / total:.2f} x)")
    for hot in (None, 2000):
        estimates, scores, swept = sweeping(s, budget, beyond[LISTED], hot)
        name = "every candidate" if hot is None else f"the {hot} leading"
        cost = scores + swept
        print(f"sweeping {name}: {estimates} estimates, {scores / 1e6:.0f} M scores"
              f" + {swept / 1e6:.0f} M in sweeps ({cost / total:.2f} x)")


if __name__ == "__main__":
    main()
