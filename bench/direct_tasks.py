#!/usr/bin/env python3
"""bench/direct_tasks.py SRC OUT [N]: the direct task of a held-out data set,
as ../shared/tools/referee.py draws it: for each user with 3 interactions or
more (users shuffled with seed 20261122, the first N, default all), the
withheld last item among 99 items the user never touched, drawn from every
item of the data set.  Writes one line per user,
user_id,target_item_id,"{item_id,...}" (the 100 candidates shuffled), which
bench/bench_quality.sh loads into SQL for isrf_rank and
`isrf_driver rank MODEL --tasks OUT` scores in-process.  A benchmark tool,
not part of the product."""
import csv
import os
import random
import sys
from collections import defaultdict


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) == 4 else None
    path = f"{src}/interactions.csv" if os.path.exists(f"{src}/interactions.csv") else f"{src}/ratings.csv"
    rows = defaultdict(list)
    with open(path) as f:
        r = csv.DictReader(f)
        order = next((c for c in ("reviewed_at", "position", "ts", "timestamp") if c in r.fieldnames), None)
        for i, row in enumerate(r):
            rows[int(row["user_id"])].append((float(row[order]) if order else i, int(row["item_id"])))
    seqs = {u: [it for _, it in sorted(v)] for u, v in rows.items() if len(v) >= 3}
    items = sorted({i for s in seqs.values() for i in s})
    rnd = random.Random(20261122)
    users = sorted(seqs)
    rnd.shuffle(users)
    with open(out, "w") as f:
        for u in users[:limit]:
            s = seqs[u]
            seen = set(s)
            tgt = s[-1]
            neg = set()
            while len(neg) < 99:
                x = rnd.choice(items)
                if x not in seen:
                    neg.add(x)
            c = [tgt] + sorted(neg)
            rnd.shuffle(c)
            f.write("%d,%d,\"{%s}\"\n" % (u, tgt, ",".join(map(str, c))))


if __name__ == "__main__":
    main()
