"""Benchmark of merged reports following their primary, on a system it starts on the real RabbitMQ: N duplicates of
one pothole merged into the first report, then the time from each status change of the primary (as its OPD's answer
returns) until every merged report has taken it (its own change, through its own aggregate, via the
intake.merge-followers queue), and the merge requests per second.

    python bench/bench_merge_fanout.py                  # 50 merged reports
    python bench/bench_merge_fanout.py --followers 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import pymongo  # noqa: E402
import requests  # noqa: E402

from tests.photo_fixtures import jpeg_with_gps  # noqa: E402
from tests.system import Vhost, client_headers, s3_server, start_system, wait_for  # noqa: E402

SPOT = (-6.2443, 106.8003)  # Blok M: jalan goes to the Suku Dinas Bina Marga Jakarta Selatan
OPD = "sudin-bina-marga-jakarta-selatan"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--followers", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        vhost = Vhost.create("jaklapor-bench")
        s3 = s3_server(Path(tmp) / "s3")
        s3.start()
        system = start_system(Path(tmp), vhost, s3)
        try:
            run(system, args.followers)
        finally:
            system.stop()
            s3.stop()
            vhost.delete()


def run(system: object, followers: int) -> None:
    headers = system.opd_headers(OPD)  # type: ignore[attr-defined]
    url = system.url  # type: ignore[attr-defined]

    def submit(n: int) -> str:
        lat = SPOT[0] + (n % 10) * 0.00005
        response = requests.post(
            url("intake", "/api/v1/reports"),
            data={"category": "jalan", "description": f"Lubang {n}", "lat": lat, "lon": SPOT[1]},
            files={"photo": ("p.jpg", jpeg_with_gps(lat, SPOT[1], size=(160, 120)), "image/jpeg")},
            headers=client_headers(f"10.9.{n // 250}.{n % 250 + 1}"),
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["report_id"]

    def held(report_id: str) -> bool:
        answer = requests.get(url("intake", f"/api/v1/opd/reports/{report_id}"), headers=headers, timeout=10)
        return answer.status_code == 200

    primary = submit(0)
    duplicates = [submit(n) for n in range(1, followers + 1)]
    for report_id in [primary, *duplicates]:
        wait_for(lambda r=report_id: held(r), 60, message=f"{report_id} routed")

    started = time.perf_counter()
    for report_id in duplicates:
        merged = requests.post(
            url("intake", f"/api/v1/opd/reports/{report_id}/merge"),
            json={"primary_id": primary},
            headers=headers,
            timeout=30,
        )
        merged.raise_for_status()
    merge_seconds = time.perf_counter() - started

    store = pymongo.MongoClient(system.mongo_uri)["jaklapor_intake"]["reports"]  # type: ignore[attr-defined]
    print(f"followers: {followers}")
    print(f"merges: {followers / merge_seconds:.1f} per second ({merge_seconds * 1000 / followers:.1f} ms each)")
    for status, extra in (("dikerjakan", {}), ("selesai", {"note": "Sudah ditambal"})):
        started = time.perf_counter()
        files = (
            {"photo": ("b.jpg", jpeg_with_gps(*SPOT, size=(160, 120)), "image/jpeg")} if status == "selesai" else None
        )
        answer = requests.post(
            url("intake", f"/api/v1/opd/reports/{primary}/transitions"),
            data={"status": status, **extra},
            files=files,
            headers=headers,
            timeout=30,
        )
        answer.raise_for_status()
        answered = time.perf_counter() - started
        wait_for(
            lambda s=status: store.count_documents({"merged_into": primary, "status": s}) == followers,
            120,
            interval=0.01,
            message=f"every merged report {status}",
        )
        total = time.perf_counter() - started
        print(
            f"primary -> {status}: answered in {answered * 1000:.0f} ms; all {followers} merged reports {status} after"
            f" {total * 1000:.0f} ms ({(total - answered) * 1000 / followers:.1f} ms per merged report)"
        )


if __name__ == "__main__":
    main()
