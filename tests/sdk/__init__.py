"""Conformance harness: vendor SDKs from PyPI, each in its own venv, driven against a server."""
