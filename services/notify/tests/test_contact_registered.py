"""notify's side of the contact_registered contract (jaklapor.events.ContactRegistered): a malformed hand-over is
dead-lettered with a reason that names the fields at fault and never their values."""

from __future__ import annotations

from typing import Any

import pytest
from nameko.testing.services import worker_factory

from jaklapor.messaging import PermanentFailure
from services.notify.service import NotifyService

VALID = {
    "message_type": "contact_registered",
    "schema_version": 1,
    "report_id": "JK-20261127-000001",
    "tracking_token_hash": "f" * 64,
    "contact_ciphertext": "gAAAA-secret-ciphertext",
}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({**VALID, "contact_ciphertext": None}, "contact_ciphertext"),
        ({k: v for k, v in VALID.items() if k != "report_id"}, "report_id"),
        ({**VALID, "tracking_token_hash": 42}, "tracking_token_hash"),
        ({**VALID, "message_type": "report_assigned"}, "message_type"),
        (["not", "an", "object"], "body"),
    ],
)
def test_a_malformed_contact_message_is_a_permanent_failure(body: Any, named: str) -> None:
    service = worker_factory(NotifyService)
    with pytest.raises(PermanentFailure) as failure:
        service.register_contact(body)
    assert named in str(failure.value)
    assert "gAAAA" not in str(failure.value)
    service.store.store_contact.assert_not_called()
