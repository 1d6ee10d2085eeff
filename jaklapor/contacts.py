"""Reporter contacts travel from intake to notify encrypted (Fernet), on a point-to-point queue, never in an event.

Intake only ever holds the ciphertext, and only until the broker confirmed its hand-over to notify.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

CONTACTS_QUEUE = "notify.contacts"


class ContactKeyError(ValueError):
    pass


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError) as exc:
        raise ContactKeyError("CONTACT_KEY must be a Fernet key (`jaklapor gen-key` makes one)") from exc


def encrypt_contact(key: str, contact: str) -> str:
    return _fernet(key).encrypt(contact.encode("utf-8")).decode("ascii")


def decrypt_contact(key: str, ciphertext: str) -> str | None:
    try:
        return _fernet(key).decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError):
        return None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")
