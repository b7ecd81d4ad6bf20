"""Every Redis key Rosetta uses, in one place (the accept script builds ``q:<backend>``
and ``depth:<backend>`` from the same prefix)."""
PREFIX = "rosetta:"
GROUP = "forwarders"
SEEN = f"{PREFIX}seen"  # the claims: one sorted set, each scored with when it expires


def queue(backend: str) -> str:
    return f"{PREFIX}q:{backend}"


def depth(backend: str) -> str:
    return f"{PREFIX}depth:{backend}"


def dead(backend: str) -> str:
    return f"{PREFIX}dlq:{backend}"


def lease(backend: str) -> str:
    return f"{PREFIX}lease:{backend}"


def runs(backend: str) -> str:
    return f"{PREFIX}runs:{backend}"


def run_deadlines(backend: str) -> str:
    return f"{PREFIX}runs-due:{backend}"


def entity(kind: str, key: str) -> str:
    return f"{PREFIX}entity:{kind}:{key}"


def counter(key: str, slot: int) -> str:
    return f"{PREFIX}rate:{key}:{slot}"
