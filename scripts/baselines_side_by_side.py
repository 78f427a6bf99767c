"""What a user would write in Python for the fds and kmeans baselines, timed
on the same pool as `activeft select --method fds|kmeans`:

    python scripts/baselines_side_by_side.py POOL.npy BUDGET

Needs numpy and scikit-learn. Loading and normalising are not timed.
"""
import sys
import time

import numpy as np
from sklearn.cluster import KMeans

features = np.load(sys.argv[1]).astype(np.float32)
features /= np.linalg.norm(features, axis=1, keepdims=True)
budget = int(sys.argv[2])

start = time.perf_counter()
similarity = features @ features[0]
picks = [0]
for _ in range(budget - 1):
    picks.append(int(np.argmin(similarity)))
    np.maximum(similarity, features @ features[picks[-1]], out=similarity)
print(f"numpy farthest-point loop: {time.perf_counter() - start:.2f} s")

start = time.perf_counter()
km = KMeans(n_clusters=budget, n_init=1, random_state=0).fit(features)
print(f"scikit-learn KMeans: {time.perf_counter() - start:.2f} s, {km.n_iter_} iterations")
