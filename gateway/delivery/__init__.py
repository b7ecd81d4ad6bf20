"""Delivery: one forwarder per backend, each with its own queue, retry policy and circuit."""
