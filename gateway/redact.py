"""Redaction: per-backend rules that mask or hash values before they leave.

Built-in patterns (e-mail addresses, API keys, card numbers), custom regexes, and
field paths whose whole value is replaced. Applied to inputs, outputs, messages,
metadata, user properties, params, errors and the kept `extra` fields; the client's
raw payload is dropped from a redacted event so nothing bypasses the rules.
"""
import hashlib
import re
from typing import Any

BUILTIN = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "api_key": r"\b(?:sk|pk|rk|hh|vk|lsv2)[-_](?:[A-Za-z0-9_-]{16,})\b|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36}\b",
    "card": r"\b(?:\d[ -]?){12,18}\d\b",
}
TARGET_FIELDS = ("input", "output", "message", "metadata", "user_props", "params", "error", "extra",
                 "feedback", "name", "user_id")


def _luhn(digits: str) -> bool:
    total, double = 0, False
    for ch in reversed(digits):
        n = int(ch) * (2 if double else 1)
        total += n - 9 if n > 9 else n
        double = not double
    return total % 10 == 0


class Redactor:
    def __init__(self, builtin: list[str], patterns: list[str], fields: list[str], mode: str = "mask"):
        self.mode = mode
        sources = [BUILTIN[name] for name in builtin] + list(patterns)
        self.patterns = [(name, re.compile(src)) for name, src in zip(list(builtin) + ["custom"] * len(patterns), sources)]
        self.fields = [tuple(path.split(".")) for path in fields]

    def _replace(self, text: str) -> str:
        if self.mode == "hash":
            return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
        return "[REDACTED]"

    def text(self, value: str) -> str:
        for name, pattern in self.patterns:
            if name == "card":
                value = pattern.sub(lambda m: self._replace(m.group()) if _luhn(re.sub(r"\D", "", m.group())) else m.group(), value)
            else:
                value = pattern.sub(lambda m: self._replace(m.group()), value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def _mask_path(self, obj: Any, path: tuple[str, ...]) -> Any:
        if not path or obj is None:
            return obj
        head, rest = path[0], path[1:]
        if isinstance(obj, list):
            return [self._mask_path(item, path) for item in obj]
        if not isinstance(obj, dict) or head not in obj:
            return obj
        out = dict(obj)
        out[head] = self._replace(str(obj[head])) if not rest else self._mask_path(obj[head], rest)
        return out

    def event(self, event: dict) -> dict:
        out = dict(event)
        for path in self.fields:
            out = self._mask_path(out, path)
        for key in TARGET_FIELDS:
            if out.get(key) is not None:
                out[key] = self.value(out[key])
        out["raw"] = None
        return out
