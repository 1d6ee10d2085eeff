"""The stand-in's cost for the writes stats makes at every step of a report: CPU per document.

stats keeps one projection per report and writes it with an unordered `bulk_write` of `ReplaceOne(..., upsert=True)`
guarded by the revision it read: the first event of a report inserts the projection through the upsert, every later
one replaces it. This drives the same writes over the wire (pymongo against the stand-in in this process, with its
journal, as `make run` and the benchmarks start it) and prints the process's CPU per document, client included:
compare two checkouts of the stand-in back to back, the client's share is the same in both.

    python bench/bench_standin_writes.py [--reports 5000] [--batch 50] [--rounds 3]
    PYTHONPATH=<other checkout> python bench/bench_standin_writes.py   # the stand-in of another checkout
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import devtools.mongo_standin as standin
except ImportError:  # a checkout without the development tools installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import devtools.mongo_standin as standin

import pymongo
from pymongo import ReplaceOne


def projection(report: int, rev: int, at: datetime.datetime) -> dict[str, Any]:
    """A report's projection about the size of stats' own: status, category, area, agency, times of each step."""
    return {
        "_id": f"JK-20261205-{report:06d}",
        "rev": rev,
        "status": ["menunggu", "disposisi", "dikerjakan", "selesai"][min(rev - 1, 3)],
        "category": "jalan-rusak",
        "kelurahan": "3171071002",
        "kecamatan": "3171071",
        "kota": "3171",
        "opd": "sudin-bina-marga-jakarta-pusat",
        "submitted_at": at,
        "routed_at": at + datetime.timedelta(seconds=1),
        "steps": [{"status": "menunggu", "at": at + datetime.timedelta(seconds=n)} for n in range(rev)],
        "handoffs": rev - 1,
        "overdue": False,
        "incident": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50, help="documents per bulk_write (stats' batches: 15-50)")
    parser.add_argument("--rounds", type=int, default=3, help="replacements of every projection after its insert")
    args = parser.parse_args()

    at = datetime.datetime(2026, 12, 5, 2, 0, tzinfo=datetime.UTC)
    with tempfile.TemporaryDirectory() as data_dir:
        server = standin.MongoStandIn("127.0.0.1", 0, data_dir=data_dir).start()
        try:
            with pymongo.MongoClient(server.uri, tz_aware=True) as client:
                projections = client.jaklapor_stats.report_projections
                projections.create_index("status")
                projections.create_index([("opd", 1), ("status", 1)])
                print(f"stand-in: {standin.__file__}")
                print(f"{args.reports:,} projections in batches of {args.batch}; process CPU per document:")
                for rev in range(1, args.rounds + 2):
                    started = time.process_time()
                    for first in range(0, args.reports, args.batch):
                        batch = range(first, min(first + args.batch, args.reports))
                        writes = [
                            ReplaceOne(
                                {"_id": f"JK-20261205-{n:06d}", "rev": rev - 1}, projection(n, rev, at), upsert=True
                            )
                            for n in batch
                        ]
                        projections.bulk_write(writes, ordered=False)
                    per_document = (time.process_time() - started) / args.reports * 1e6
                    kind = "inserted through the upsert" if rev == 1 else f"replaced (revision {rev})"
                    print(f"  {kind:32s} {per_document:8.1f} µs")
                assert projections.count_documents({"rev": args.rounds + 1}) == args.reports
        finally:
            server.stop()


if __name__ == "__main__":
    main()
