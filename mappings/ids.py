"""Identifiers: deterministic UUIDs and content hashes.

Backends that require UUIDs get one derived from the run id, so every retry of the
same event maps to the same id. Dialects that carry no id at all (Voker,
honeyhive-logger) get one derived from the content, which is what makes their
retries recognisable as duplicates.
"""
import hashlib
import uuid

import orjson

_NAMESPACE = uuid.UUID("6f1c1c59-6a4b-4d5e-9a55-52f0f5e3a0b1")


def is_uuid(value: str) -> bool:
    """Only the canonical 8-4-4-4-12 form: `uuid.UUID` also takes braces and stray hyphens."""
    if len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def as_uuid(value: str) -> str:
    """The value itself if it is a UUID, else a UUID derived from it."""
    return value if is_uuid(value) else str(uuid.uuid5(_NAMESPACE, value))


def derived_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def content_hash(value) -> str:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
