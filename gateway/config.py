"""The config file: YAML with ``${ENV_VAR}`` interpolation, validated by pydantic.

Unknown keys are rejected (as Vector does) so a typo stops start-up with a message
naming the key, instead of silently running with a default.
"""
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DIALECTS = ("llmonitor", "lunary", "honeyhive", "voker", "otlp")
BACKEND_DIALECTS = ("jsonl", "llmonitor", "lunary", "honeyhive", "voker", "otlp")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config that cannot run; the message names the key (and line, where known)."""


class Located(ValueError):
    """A cross-field error that knows which key it is about, so its message can name the line."""

    def __init__(self, message: str, loc: tuple):
        super().__init__(message)
        self.loc = loc


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Listen(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class Retry(Strict):
    initial_backoff: float = Field(0.2, gt=0)
    max_backoff: float = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1)
    breaker_failures: int = Field(5, ge=1, description="consecutive failed attempts that open the circuit")
    breaker_cooldown: float = Field(10.0, gt=0)


class Redaction(Strict):
    builtin: list[Literal["email", "api_key", "card"]] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list, description="custom regular expressions")
    fields: list[str] = Field(default_factory=list, description="dotted canonical paths, e.g. metadata.ssn")
    mode: Literal["mask", "hash"] = "mask"

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value):
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
        return value


class Backend(Strict):
    name: str
    dialect: Literal["jsonl", "llmonitor", "lunary", "honeyhive", "voker", "otlp"]
    url: str | None = None
    path: str | None = None
    api_key: str | None = Field(None, description="outbound credential; use ${ENV_VAR} or api_key_file")
    api_key_file: str | None = None
    app_id: str | None = None
    project: str | None = None
    encoding: Literal["protobuf", "json"] = "protobuf"
    batch_size: int = Field(100, ge=1, le=10000)
    timeout: float = Field(10.0, gt=0)
    max_queue: int = Field(1_000_000, ge=1, description="queued events beyond which ingress answers 429/503")
    run_timeout: float = Field(300.0, gt=0, description="seconds before an unfinished run is flushed as incomplete")
    retry: Retry = Field(default_factory=Retry)
    redact: Redaction | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value):
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
        return value

    @model_validator(mode="after")
    def _target(self):
        if self.dialect == "jsonl":
            if not self.path:
                raise ValueError(f"backend {self.name!r}: dialect jsonl needs 'path'")
        elif not self.url:
            raise ValueError(f"backend {self.name!r}: dialect {self.dialect} needs 'url'")
        if self.dialect == "llmonitor" and not self.app_id:
            raise ValueError(f"backend {self.name!r}: dialect llmonitor needs 'app_id'")
        return self

    def secret(self) -> str | None:
        if self.api_key_file:
            return Path(self.api_key_file).read_text().strip()
        return self.api_key


class Route(Strict):
    """Send the tenant's events that pass every given filter to ``backend``."""

    backend: str
    kinds: list[str] = Field(default_factory=list)
    phases: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list, description="any of these tags")
    metadata: dict[str, Any] = Field(default_factory=dict, description="all of these metadata values")
    sample: float | None = Field(None, ge=0.0, le=1.0)


class RateLimit(Strict):
    events_per_second: int | None = Field(None, ge=1)
    requests_per_second: int | None = Field(None, ge=1)


class Tenant(Strict):
    name: str
    keys: list[str] | dict[str, list[str]] = Field(default_factory=list)
    backends: list[str] = Field(default_factory=list, description="receive every event of the tenant")
    routes: list[Route] = Field(default_factory=list, description="receive the events their filters pass")
    rate_limit: RateLimit | None = None

    def credentials(self) -> list[tuple[str | None, str]]:
        """(dialect or None for any dialect, key) pairs."""
        if isinstance(self.keys, list):
            return [(None, k) for k in self.keys]
        return [(dialect, k) for dialect, keys in self.keys.items() for k in keys]

    @field_validator("keys")
    @classmethod
    def _dialects(cls, value):
        if isinstance(value, dict):
            for dialect in value:
                if dialect not in DIALECTS:
                    raise ValueError(f"unknown dialect {dialect!r} (one of {', '.join(DIALECTS)})")
        return value


# the memory store's defaults: its claims and each queue live in the gateway's own memory
MEMORY_CLAIMS = 100_000
MEMORY_QUEUE_BYTES = 16 * 1024 * 1024


class Limits(Strict):
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_decompressed_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    body_timeout: float = Field(30.0, gt=0, description="seconds a client may take to send a request body")
    dedupe_ttl: int = Field(24 * 3600, ge=1)
    memory_claims: int = Field(MEMORY_CLAIMS, ge=1, description="with the memory store, the most recent event "
                               "identities kept for dedupe (about 200 bytes each), however young")
    memory_queue_bytes: int = Field(MEMORY_QUEUE_BYTES, ge=1024, description="with the memory store, the bytes "
                                    "of events (each its share of the request body it came in; in memory they take "
                                    "about four times that) one "
                                    "backend's queue holds before ingress answers 429/503")


class Delivery(Strict):
    """How replicas share a backend: one holds its lease and forwards; the others wait."""

    lease_ttl: float = Field(10.0, gt=0, description="seconds a dead holder keeps a backend's lease")
    reclaim_idle: float | None = Field(None, gt=0, description="seconds before another replica re-claims "
                                       "a dead holder's unacknowledged entries (default: lease_ttl)")
    linger: float = Field(0.05, ge=0, le=5, description="seconds a forwarder waits after reading fewer events "
                          "than a backend batch and under 1 MB of them, so that a trickle is sent in batches, "
                          "not request by request; it stops waiting once a backend batch is queued")
    exact_o200k: bool = Field(False, description="count the gpt-4o family and later OpenAI models in their "
                              "own encoding, o200k_base (exact; loaded at start-up, about 65 MB more per "
                              "process); off, they are counted in cl100k_base (approximate)")


class Config(Strict):
    listen: Listen = Field(default_factory=Listen)
    store: str = "memory"
    delivery: Delivery = Field(default_factory=Delivery)
    tenants: list[Tenant] = Field(default_factory=list)
    backends: list[Backend] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    log_level: str = "INFO"
    admin_token: str | None = Field(None, description="bearer token for /_rosetta/* (unset: loopback callers only)")
    open_access: bool = Field(False, description="accept any credential as tenant 'default' (the no-config mode)")

    @field_validator("store")
    @classmethod
    def _store(cls, value):
        if value != "memory" and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be 'memory' or a redis:// URL")
        return value

    @model_validator(mode="after")
    def _references(self):
        names = [b.name for b in self.backends]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise Located(f"backend name {name!r} is used twice", ("backends", index, "name"))
        for index, tenant in enumerate(self.tenants):
            refs = [(("backends", i), ref) for i, ref in enumerate(tenant.backends)]
            refs += [(("routes", i, "backend"), r.backend) for i, r in enumerate(tenant.routes)]
            for where, ref in refs:
                if ref not in names:
                    raise Located(f"tenant {tenant.name!r} names unknown backend {ref!r}", ("tenants", index, *where))
        seen: dict[str, list[tuple[str | None, str]]] = {}  # key -> (dialect or None for all, tenant)
        for index, tenant in enumerate(self.tenants):
            for dialect, key in tenant.credentials():
                for other_dialect, other in seen.get(key, ()):
                    if other != tenant.name and (None in (dialect, other_dialect) or dialect == other_dialect):
                        where = ("tenants", index, "keys") + ((dialect,) if dialect else ())
                        raise Located(f"key {key[:4]}… is given to tenants {other!r} and {tenant.name!r}", where)
                seen.setdefault(key, []).append((dialect, tenant.name))
        return self

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    missing = []

    def sub(match):
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append((text.count("\n", 0, match.start()) + 1, name))
        return ""

    out = _ENV.sub(sub, text)
    if missing:
        raise ConfigError("environment variable(s) not set: " + ", ".join(
            f"{name} (line {line})" for line, name in sorted(set(missing))))
    return out


def line_at(text: str, loc: tuple) -> int | None:
    """The line of the deepest key or item of the YAML document that ``loc`` reaches."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _line_of(text: str, loc: tuple) -> str:
    """The line of a pydantic error location: from the YAML nodes, else the last named key."""
    line = line_at(text, loc) if loc else None
    if line is not None:
        return f" (line {line})"
    keys = [k for k in loc if isinstance(k, str)]
    if not keys:
        return ""
    pattern = re.compile(rf"^\s*-?\s*{re.escape(keys[-1])}\s*:", re.M)
    match = pattern.search(text)
    return f" (line {text.count(chr(10), 0, match.start()) + 1})" if match else ""


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    source = interpolate(text, env)
    try:
        data = yaml.safe_load(source) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping at the top level")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            error = (err.get("ctx") or {}).get("error")
            loc = error.loc if isinstance(error, Located) else err["loc"]
            where = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{where}: {err['msg']}{_line_of(source, loc)}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from None


def load(path: str | Path) -> Config:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return parse(text)


def default(events_path: str) -> Config:
    """The embedded default: memory store, any credential, every event to a JSONL file."""
    return Config(
        open_access=True,
        tenants=[Tenant(name="default", backends=["archive"])],
        backends=[Backend(name="archive", dialect="jsonl", path=events_path)],
    )


def dump_public(config: Config) -> dict[str, Any]:
    """The config with every secret masked, for logs and status output."""
    data = config.model_dump()
    for backend in data["backends"]:
        if backend.get("api_key"):
            backend["api_key"] = "***"
    for tenant in data["tenants"]:
        tenant["keys"] = "***"
    if data.get("admin_token"):
        data["admin_token"] = "***"
    return data
