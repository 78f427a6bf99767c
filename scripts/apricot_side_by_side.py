"""Facility location side by side: apricot's FacilityLocationSelection and
`activeft select --method facloc` on the same pool and budget.

    python3 -m venv venv && venv/bin/pip install apricot-select scikit-learn
    venv/bin/python scripts/apricot_side_by_side.py POOL.npy BUDGET [activeft binary]

Prints each tool's wall time, peak memory of its process (apricot's runs in
a child so the two do not mix) and the coverage its picks reach: the mean
over the pool of 1 - the best cosine similarity to a pick, as `eval`
reports it (lower is better). Not run in CI.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np

APRICOT = """
import sys, time, json, numpy as np
from apricot import FacilityLocationSelection
x = np.load(sys.argv[1]).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
start = time.time()
model = FacilityLocationSelection(int(sys.argv[2]), metric="cosine", verbose=False).fit(x)
print(json.dumps({"seconds": time.time() - start, "picks": [int(i) for i in model.ranking]}))
"""


def coverage(x, picks):
    best = np.full(len(x), -1.0)
    for start in range(0, len(picks), 256):
        sims = x @ x[picks[start:start + 256]].T
        best = np.maximum(best, sims.max(axis=1))
    return float(np.mean(1.0 - best))


def timed(command):
    """Runs `command`; its stdout, wall seconds and peak resident MB (its own)."""
    start = time.time()
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"{command[0]} failed")
    return out, time.time() - start, usage.ru_maxrss / 1024


def main():
    pool, budget = sys.argv[1], int(sys.argv[2])
    binary = sys.argv[3] if len(sys.argv) > 3 else "target/release/activeft"
    ours, ours_seconds, ours_mb = timed([binary, "select", "--features", pool, "--budget", str(budget),
                                         "--method", "facloc", "--quiet"])
    ours_picks = json.loads(ours)
    theirs, theirs_seconds, theirs_mb = timed([sys.executable, "-c", APRICOT, pool, str(budget)])
    theirs_fit = json.loads(theirs)
    x = np.load(pool).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)

    print(f"pool {pool}: {x.shape[0]} x {x.shape[1]}, budget {budget}")
    print(f"activeft facloc: {ours_seconds:.1f} s, peak {ours_mb:.0f} MB, coverage {coverage(x, ours_picks):.6f}")
    print(f"apricot        : {theirs_seconds:.1f} s (fit {theirs_fit['seconds']:.1f} s), peak {theirs_mb:.0f} MB, "
          f"coverage {coverage(x, theirs_fit['picks']):.6f}")
    print(f"same picks: {sorted(ours_picks) == sorted(theirs_fit['picks'])}, "
          f"shared: {len(set(ours_picks) & set(theirs_fit['picks']))} of {budget}")


if __name__ == "__main__":
    main()
