"""Structured logs: one JSON object per line, carrying the request id, never a secret.

Every record (ours and libraries') goes through one formatter. The request id of
the request being handled is kept in a context variable, so lines logged while
handling it carry it without being passed around. Before a line is written, every
secret the config holds (backend api keys, inbound keys, the admin token) and any
Authorization-style credential are masked.
"""
import contextvars
import itertools
import logging
import os
import re
import sys
import time

import orjson

from .config import Config

REQUEST_ID = contextvars.ContextVar("rosetta_request_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_FIELD = re.compile(r"(?i)\b(authorization|x-api-key|api[-_]?key|admin[-_]?token)(\"?\s*[:=]\s*\"?)(?!bearer\b|basic\b)[^\s\"',;}]+")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}
MASK = "***"


class _Ids:
    """Request ids unique across processes and replicas: a random prefix per process
    (drawn again in a forked worker) and a counter, so a request costs no system call."""

    def __init__(self):
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_IDS = _Ids()


def request_id(incoming: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one."""
    if incoming and _VALID_ID.match(incoming):
        return incoming
    return _IDS.next()


def secrets_of(config: Config) -> list[str]:
    found = [k for tenant in config.tenants for _, k in tenant.credentials()]
    for backend in config.backends:
        try:
            found.append(backend.secret())
        except OSError:
            pass
    found.append(config.admin_token)
    return sorted({s for s in found if s and len(s) >= 4}, key=len, reverse=True)


class Redactor:
    def __init__(self, secrets: list[str] = ()):
        self.secrets = list(secrets)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
        return _FIELD.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid:
            line["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return self.redact(orjson.dumps(line, default=str).decode())


def level_of(config: Config) -> str:
    return os.environ.get("ROSETTA_LOG_LEVEL", config.log_level).upper()


def configure(config: Config, stream=None) -> logging.Handler:
    """Route every logger to one JSON line handler at the configured level (env wins)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(Redactor(secrets_of(config))))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_of(config))
    return handler

