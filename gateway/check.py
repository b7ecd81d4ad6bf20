"""`rosetta check CONFIG`: what would stop a config from running, found before it runs.

Errors fail the check: the schema, unset ``${ENV}`` variables, malformed backend URLs,
a key given to two tenants (all found by `config.parse`), an unreadable or empty
``api_key_file``. Unreachable backends are only warnings: they may be up by the time
the gateway runs, and until then the gateway queues and retries.
"""
import asyncio
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import config as config_mod
from .config import Backend, Config

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    message: str


def _where(text: str, loc: tuple) -> str:
    line = config_mod.line_at(text, loc)
    return ".".join(str(p) for p in loc) + (f" (line {line})" if line else "")


def validate(path: str) -> tuple[Config | None, str, list[Finding]]:
    """The parsed config (None when it does not parse), its interpolated text, and the errors."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        return None, "", [Finding("error", f"cannot read config: {exc}")]
    try:
        source = config_mod.interpolate(text)
        cfg = config_mod.parse(text)
    except config_mod.ConfigError as exc:
        return None, "", [Finding("error", str(exc))]
    errors = []
    for index, backend in enumerate(cfg.backends):
        if backend.api_key_file:
            where = _where(source, ("backends", index, "api_key_file"))
            try:
                if not Path(backend.api_key_file).read_text().strip():
                    errors.append(Finding("error", f"{where}: {backend.api_key_file!r} is empty"))
            except OSError as exc:
                errors.append(Finding("error", f"{where}: cannot read {backend.api_key_file!r}: {exc.strerror}"))
    return cfg, source, errors


async def _reachable(backend: Backend, timeout: float) -> str | None:
    """None when the backend's host accepts a TCP connection, else why not."""
    parts = urlsplit(backend.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    writer.close()
    return None


async def probe(cfg: Config, source: str, timeout: float = PROBE_TIMEOUT) -> list[Finding]:
    """A warning per backend whose host does not accept a connection within ``timeout``."""
    targets = [(i, b) for i, b in enumerate(cfg.backends) if b.url]
    reasons = await asyncio.gather(*(_reachable(b, timeout) for _, b in targets))
    return [Finding("warning", f"{_where(source, ('backends', i, 'url'))}: backend {b.name!r} at {b.url} "
                               f"is unreachable ({reason}); events for it will queue until it answers")
            for (i, b), reason in zip(targets, reasons) if reason]


def run(path: str, timeout: float = PROBE_TIMEOUT) -> tuple[Config | None, list[Finding]]:
    cfg, source, findings = validate(path)
    if cfg is not None:
        findings += asyncio.run(probe(cfg, source, timeout))
    return cfg, findings
