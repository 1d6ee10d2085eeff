"""The routing ledger: the first decision for (report, hop) is kept, and one worker at a time delivers it."""

from __future__ import annotations

from datetime import timedelta

import mongomock

from jaklapor.vocabulary import utcnow
from services.routing.dependencies import LedgerRepository


def ledger(lease: timedelta = timedelta(seconds=30)) -> LedgerRepository:
    return LedgerRepository(mongomock.MongoClient(tz_aware=True)["routing"], lease)


def test_a_redelivered_report_gets_the_first_decision_and_no_second_delivery() -> None:
    repository = ledger()
    first, claimed = repository.record_and_claim("JK-1", 0, {"opd_code": "kel-melawai"})
    assert claimed and first["opd_code"] == "kel-melawai"
    repository.mark_delivered("JK-1", 0, utcnow())

    again, claimed_again = repository.record_and_claim("JK-1", 0, {"opd_code": "satpol-pp"})
    assert not claimed_again and again["opd_code"] == "kel-melawai"
    other_hop, claimed_hop = repository.record_and_claim("JK-1", 1, {"opd_code": "satpol-pp"})
    assert claimed_hop and other_hop["opd_code"] == "satpol-pp"


def test_a_claim_of_a_worker_that_died_is_taken_over_after_its_lease() -> None:
    repository = ledger(lease=timedelta(milliseconds=1))
    repository.record_and_claim("JK-1", 0, {"opd_code": "kel-melawai"})  # this worker dies before delivering
    kept, claimed = repository.record_and_claim("JK-1", 0, {"opd_code": "satpol-pp"})
    assert claimed and kept["opd_code"] == "kel-melawai"
