"""The performance benchmark: ``python -m tests.perf.bench`` (``--quick`` for a smoke run)."""
