"""Chat messages: every dialect's message shape to one OpenAI-like shape and back.

Canonical message: ``{"role", "content", "tool_calls"?, "tool_call_id"?, "name"?}``
where content is a string or a list of typed parts (``{"type": "text", "text"}``,
``{"type": "image", ...}``, ``{"type": "tool_result", ...}``) and tool calls are
OpenAI's ``{"id", "type": "function", "function": {"name", "arguments"}}``.
Keys a message carries beyond these are kept as they are.
"""
from typing import Any

import orjson

ROLE_ALIASES = {"ai": "assistant", "model": "assistant", "human": "user", "bot": "assistant"}
_MESSAGE_BODY_KEYS = frozenset(("content", "text", "parts", "tool_calls", "function_call"))
_MESSAGE_KEYS = _MESSAGE_BODY_KEYS | {"role"}  # what `normalize_message` rewrites; other keys are kept


def is_message(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    if not isinstance(value.get("role"), str) or _MESSAGE_BODY_KEYS.isdisjoint(value):
        return False
    calls = value.get("tool_calls")
    return not calls or isinstance(calls, list)


def is_message_list(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    for item in value:
        if not is_message(item):
            return False
    return True


def _tool_call(call_id, name, arguments) -> dict:
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _parts(blocks: list, tool_calls: list) -> list | str:
    """Anthropic and OpenAI content blocks and Gemini parts to canonical parts."""
    parts = []
    for block in blocks:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        if not isinstance(block, dict):
            parts.append({"type": "unknown", "value": block})
            continue
        btype = block.get("type")
        if btype in ("text", "input_text", "output_text") or (btype is None and "text" in block):
            parts.append({"type": "text", "text": block.get("text")})
        elif btype == "tool_use":
            tool_calls.append(_tool_call(block.get("id"), block.get("name"), block.get("input", {})))
        elif isinstance(block.get("functionCall"), dict):
            call = block["functionCall"]
            tool_calls.append(_tool_call(call.get("id"), call.get("name"), call.get("args", {})))
        elif btype == "tool_result":
            parts.append({"type": "tool_result", "tool_call_id": block.get("tool_use_id"), "content": block.get("content")})
        elif isinstance(block.get("functionResponse"), dict):
            resp = block["functionResponse"]
            parts.append({"type": "tool_result", "name": resp.get("name"), "content": resp.get("response")})
        else:
            parts.append(block)
    if len(parts) == 1 and parts[0].get("type") == "text" and isinstance(parts[0].get("text"), str):
        return parts[0]["text"]
    return parts


def normalize_message(msg: dict) -> dict:
    role = msg["role"]
    if len(msg) == 2 and isinstance(msg.get("content"), str):  # already canonical but for the role's name
        return {"role": ROLE_ALIASES.get(role, role), "content": msg["content"]}
    out: dict[str, Any] = {"role": ROLE_ALIASES.get(role, role)}
    tool_calls: list = list(msg.get("tool_calls") or [])
    if "content" in msg:
        content = msg["content"]
        out["content"] = _parts(content, tool_calls) if isinstance(content, list) else content
    elif "text" in msg:
        out["content"] = msg["text"]
    elif "parts" in msg and isinstance(msg["parts"], list):
        out["content"] = _parts(msg["parts"], tool_calls)
    else:
        out["content"] = None
    if msg.get("function_call"):
        call = msg["function_call"]
        if isinstance(call, dict):
            tool_calls.append(_tool_call(None, call.get("name"), call.get("arguments", "")))
    if tool_calls:
        out["tool_calls"] = tool_calls
    for key, value in msg.items():
        if key not in _MESSAGE_KEYS:
            out[key] = value
    return out


def canonical_message(value: Any) -> dict | None:
    """``value`` as a canonical message, or None where it is not a message."""
    if type(value) is dict and len(value) == 2:  # the commonest, a role and a text: as it stands
        role, content = value.get("role"), value.get("content")
        if type(role) is str and type(content) is str:
            if role not in ROLE_ALIASES and next(iter(value)) == "role":
                return value  # canonical already (nothing changes a message in place, so it may be shared)
            return {"role": ROLE_ALIASES.get(role, role), "content": content}
    return normalize_message(value) if is_message(value) else None


def normalize(value: Any) -> Any:
    """Messages (one or a list) in any known shape become canonical; anything else is kept."""
    if isinstance(value, list):
        out = []
        for item in value:
            message = canonical_message(item)
            if message is None:
                return value
            out.append(message)
        return out or value
    message = canonical_message(value)
    return value if message is None else message


def text_of(content: Any) -> str:
    """The text of canonical content: a string, or its text parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return orjson.dumps(content).decode()


def to_v0(value: Any) -> Any:
    """Canonical messages to LLMonitor v0's ``{"role": "ai"|..., "text"}``."""
    if isinstance(value, list) and value and all(is_message(m) for m in value):
        return [to_v0(m) for m in value]
    if not is_message(value):
        return value
    out = {"role": "ai" if value["role"] == "assistant" else value["role"], "text": text_of(value.get("content"))}
    for key in ("tool_calls", "name", "tool_call_id"):
        if value.get(key) is not None:
            out[key] = value[key]
    return out
