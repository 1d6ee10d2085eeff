"""The outbox's two queries on a stand-in that holds many reports: CPU per call.

Every report is stored with its own `outbox_due` (it is leased to a relay at once), and the relay clears it once the
report's events are confirmed; a few reports still wait. On that store this times, in-process (the stand-in's
`FastClient`, no socket), the queries intake runs on `outbox_due`, which has a sparse index:

    count_documents({"outbox_due": {"$exists": True}})      admission control, once a second
    find({"outbox_due": {"$lte": now}}).sort(...).limit(100) the relay's periodic scan

Both should cost in proportion to the reports still waiting, as with MongoDB's index, not to all reports ever stored.

    python bench/bench_outbox_queries.py [--reports 20000] [--waiting-every 20] [--calls 20]
    PYTHONPATH=<other checkout> python bench/bench_outbox_queries.py   # the stand-in of another checkout
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    import devtools.mongo_standin as standin
except ImportError:  # a checkout without the development tools installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import devtools.mongo_standin as standin


def cpu_ms(call: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--waiting-every", type=int, default=20, help="one report in N is still to be published")
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()

    reports = standin.FastClient().jaklapor_intake.reports
    reports.create_index("tracking_token_hash", unique=True)
    reports.create_index("outbox_due", sparse=True)
    start = datetime.datetime(2026, 12, 1)
    for i in range(args.reports):
        due = start + datetime.timedelta(milliseconds=i)
        reports.insert_one({"_id": f"R{i}", "tracking_token_hash": f"t{i}", "outbox_due": due, "outbox": [{"e": i}]})
        if i % args.waiting_every:  # published
            reports.update_one({"_id": f"R{i}"}, {"$set": {"outbox": []}, "$unset": {"outbox_due": ""}})
    now = start + datetime.timedelta(days=1)
    waiting = reports.count_documents({"outbox_due": {"$exists": True}})

    def count() -> object:
        return reports.count_documents({"outbox_due": {"$exists": True}})

    def scan() -> object:
        return list(reports.find({"outbox_due": {"$lte": now}}, {"_id": 1}).sort("outbox_due", 1).limit(100))

    print(f"stand-in: {standin.__file__}")
    print(f"{args.reports:,} reports stored, {waiting:,} still to publish; CPU per call, mean of {args.calls}:")
    print(f"  admission control's count ($exists):     {cpu_ms(count, args.calls):8.2f} ms")
    print(f"  the relay's scan ($lte, sorted, 100):    {cpu_ms(scan, args.calls):8.2f} ms")


if __name__ == "__main__":
    main()
