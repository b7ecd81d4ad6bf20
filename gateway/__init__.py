"""Rosetta's I/O layers: config, HTTP ingress, the store, and delivery to backends."""
