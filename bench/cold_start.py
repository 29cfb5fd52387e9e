#!/usr/bin/env python3
"""bench/cold_start.py [DATA_ROOT]: what a user with no history of their own
is served (isrf_recommend's cold-start list, isrf_rank's fallback): the top
10 items by train-split counts, by whole-history counts and by recent
popularity (each interaction counts DECAY^(steps from the end of its user's
history); the product uses 0.5), scored HR@10 / NDCG@10 on validation (each
user's second-to-last item, the histories without their last item, the
train split without their last two) and on test (the last item, the
histories without it).  Prints one line per data set and target.  A
benchmark tool, not part of the product."""
import collections
import csv
import math
import os
import sys

DATA = [("beauty", "interactions.csv", "position"), ("goodreads", "interactions.csv", "position"),
        ("ml100k", "ratings.csv", "timestamp")]


def histories(path, order):
    seqs = collections.defaultdict(list)
    with open(path) as f:
        for row in csv.DictReader(f):
            seqs[int(row["user_id"])].append((float(row[order]), int(row["item_id"])))
    # ties on the order column by item id, as DESIGN.md section 3 says
    return {u: [i for _, i in sorted(v)] for u, v in seqs.items()}


def score(top, targets):
    hr = nd = 0.0
    for t in targets:
        if t in top:
            hr += 1
            nd += 1 / math.log2(top.index(t) + 2)
    return hr / len(targets), nd / len(targets)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    for name, fname, order in DATA:
        path = os.path.join(root, name, fname)
        if not os.path.exists(path):
            continue
        seqs = histories(path, order)
        for split, cut in (("validation", 1), ("test", 0)):
            known = {u: s[:len(s) - cut] for u, s in seqs.items() if len(s) >= 3}
            targets = [h[-1] for h in known.values()]
            before = {u: h[:-1] for u, h in known.items()}
            counts = {"train-split counts": collections.Counter(), "whole-history counts": collections.Counter()}
            recent = {g: collections.Counter() for g in (0.3, 0.5, 0.7, 0.9)}
            for h in before.values():
                n = len(h)
                for j, i in enumerate(h):
                    counts["whole-history counts"][i] += 1
                    if j < n - 2:
                        counts["train-split counts"][i] += 1
                    for g in recent:
                        recent[g][i] += g ** (n - 1 - j)
            cells = []
            for label, c in list(counts.items()) + [("recent %.1f" % g, c) for g, c in recent.items()]:
                top = sorted(c, key=lambda i: (-c[i], i))[:10]
                cells.append("%s %.4f / %.4f" % ((label,) + score(top, targets)))
            print("%-9s %-10s %s" % (name, split, "; ".join(cells)))


if __name__ == "__main__":
    main()
