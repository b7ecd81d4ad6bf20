"""Timestamps: every dialect's clock format to canonical ISO 8601 UTC with milliseconds."""
import re
from datetime import datetime, timedelta, timezone

from .errors import MappingError

UTC = timezone.utc
_MIN_MS = 0
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)


def _format(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1)


_SECONDS: dict[int, str] = {}  # seconds lately formatted: a batch's events share a few
_MILLIS = [f".{n:03d}Z" for n in range(1000)]


def from_ms(ms: float) -> str:
    """Exact to the millisecond over the whole range (no float division by 1000)."""
    if type(ms) is int and _MIN_MS <= ms <= _MAX_MS:
        second, millis = divmod(ms, 1000)
        text = _SECONDS.get(second)
        if text is None:
            if len(_SECONDS) >= 1024:
                _SECONDS.clear()
            text = _SECONDS[second] = (_EPOCH + timedelta(seconds=second)).isoformat()
        return text + _MILLIS[millis]
    if not _MIN_MS <= ms <= _MAX_MS:
        raise MappingError("", f"epoch milliseconds out of range: {ms!r}")
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def iso_time(value) -> str:
    """ISO 8601 string or epoch milliseconds (the Lunary server takes both)."""
    if isinstance(value, bool):
        raise MappingError("", "expected an ISO 8601 date or epoch milliseconds, got a boolean")
    if isinstance(value, (int, float)):
        return from_ms(value)
    if not isinstance(value, str):
        raise MappingError("", f"expected an ISO 8601 date, got {type(value).__name__}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise MappingError("", f"invalid ISO 8601 date {value[:64]!r}") from None
    if _CANONICAL.fullmatch(value):
        return value
    try:
        return _format(dt)
    except OverflowError:  # a valid local time whose UTC equivalent falls outside years 1..9999
        raise MappingError("", f"date out of range {value[:64]!r}") from None


def ms_time(value) -> str:
    """Epoch milliseconds, as HoneyHive sends start_time and end_time."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MappingError("", f"expected epoch milliseconds (a number), got {type(value).__name__}")
    return from_ms(value)


def to_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def to_ns(iso: str) -> int:
    dt = datetime.fromisoformat(iso)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def from_ns(ns: int) -> str:
    """Truncated to the millisecond, as `from_ms` truncates a fraction."""
    return from_ms(ns // 1_000_000 if type(ns) is int else ns / 1_000_000)


def now_iso() -> str:
    return _format(datetime.now(UTC))
