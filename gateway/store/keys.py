"""Every Redis key Rosetta uses, in one place (the accept script builds ``seen`` (the
claims), ``q:<backend>`` and ``depth:<backend>`` from the same prefix)."""
PREFIX = "rosetta:"
GROUP = "forwarders"


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
