"""Read what a simulator (or the JSONL archive) holds back into one normalized run shape.

A run becomes ``{id, kind, parent, name, model, input, output, usage, params, error,
feedback, user_id, user_props, tags, metadata, session, incomplete}``; messages become
``[role, text]`` pairs after their shape was checked against the backend's own message
shape (LLMonitor v0 ``{role: "ai", text}``, GenAI ``{role, parts}`` for OTLP, OpenAI
``{role, content}`` elsewhere).
"""
from pathlib import Path
from typing import Any

import orjson

V0_ROLES = {"ai": "assistant"}


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("role"), str) and ("content" in value or "text" in value)


def messages(value: Any, style: str) -> Any:
    """Messages as [role, text] pairs, asserting the backend's shape; other values as they are."""
    if _is_message(value):
        value = [value]
    if not (isinstance(value, list) and value and all(_is_message(m) for m in value)):
        return unwrap(value)
    out = []
    for m in value:
        if style == "v0":
            assert "text" in m and "content" not in m, f"not a v0 message: {m}"
            assert m["role"] != "assistant", f"v0 says 'ai', not 'assistant': {m}"
            out.append([V0_ROLES.get(m["role"], m["role"]), m["text"]])
        else:
            assert "content" in m and "text" not in m, f"not an OpenAI-shaped message: {m}"
            assert m["role"] != "ai", f"OpenAI says 'assistant': {m}"
            out.append([m["role"], m["content"]])
    return out


def unwrap(value: Any) -> Any:
    """HoneyHive wraps a bare value as ``{"input": v}``/``{"output": v}``: compare the value."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("input", "output"):
        return next(iter(value.values()))
    return value


def _run(**fields) -> dict:
    base = dict.fromkeys(("id", "kind", "parent", "name", "model", "input", "output", "usage", "params", "error",
                          "feedback", "user_id", "user_props", "tags", "metadata", "session"))
    base["incomplete"] = False
    base.update(fields)
    return base


def lunary_runs(received, style: str) -> tuple[list[dict], dict[str, list]]:
    """Runs as the Lunary server stores them (the LLMonitor backend is the same server)."""
    stored = received.objects("runs")
    runs, threads = [], {}
    for run in stored.values():
        if run["type"] == "chat":
            thread = threads.setdefault(run["parentRunId"], [])
            for side in ("input", "output"):
                for m in run[side] or []:
                    thread.append([V0_ROLES.get(m["role"], m["role"]), m.get("content")])
            continue
        if run["type"] in ("thread", "convo"):  # the server keeps a thread's last message as its input
            continue
        parent = stored.get(run["parentRunId"]) if run["parentRunId"] else None
        tokens = run["tokens"]
        error = run["error"]
        runs.append(_run(
            id=run["id"], kind=run["type"], parent=run["parentRunId"], name=run["name"],
            model=run["name"] if run["type"] == "llm" else None,
            input=messages(run["input"], style), output=messages(run["output"], style),
            usage=[tokens["prompt"], tokens["completion"]] if tokens else None, params=run["params"],
            error=error.get("message") if isinstance(error, dict) else error, feedback=run["feedback"],
            user_id=run["userId"], user_props=run["userProps"], tags=run["tags"], metadata=run["metadata"],
            session=run["parentRunId"] if parent and parent["type"] in ("thread", "convo") else None,
        ))
    return runs, threads


def honeyhive_runs(received) -> tuple[list[dict], dict[str, list]]:
    runs, threads = [], {}
    for event in received.objects("events").values():
        if event["event_type"] == "session":
            continue
        metadata = event.get("metadata") or {}
        kind = {"model": "llm", "tool": "tool"}.get(event["event_type"], metadata.get("run_type", "chain"))
        inputs = event.get("inputs") or {}
        history = inputs.get("chat_history") if set(inputs) == {"chat_history"} else None
        if kind == "chat":
            thread = threads.setdefault(event["session_id"], [])
            thread.extend(messages(history, "openai") if history else [])
            if event.get("outputs"):
                thread.extend(messages(event["outputs"], "openai"))
            continue
        metrics = event.get("metrics") or {}
        props = dict(event.get("user_properties") or {})
        config = event.get("config") or {}
        runs.append(_run(
            id=event["event_id"], kind=kind,
            parent=None if event.get("parent_id") == event.get("session_id") else event.get("parent_id"),
            name=event["event_name"], model=config.get("model"),
            input=messages(history, "openai") if history is not None else unwrap(event.get("inputs")),
            output=messages(event.get("outputs"), "openai"),
            usage=[metrics.get("prompt_tokens"), metrics.get("completion_tokens")] if "prompt_tokens" in metrics else None,
            params=config.get("hyperparameters"), error=event.get("error"), feedback=event.get("feedback"),
            user_id=props.pop("user_id", None), user_props=props, tags=metadata.get("tags"), metadata=metadata,
            session=event["session_id"], incomplete=bool(metadata.get("incomplete")),
        ))
    return runs, threads


def voker_runs(received) -> tuple[list[dict], dict[str, list]]:
    runs = []
    for event in received.records("events"):
        props = event["properties"]
        assert props["api"] == "openai-chat-completions"
        inputs, output = props["inputs"], props["output"]
        usage = output.get("usage") or {}
        runs.append(_run(
            kind="llm", name=inputs["model"], model=inputs["model"], input=messages(inputs["messages"], "openai"),
            output=messages(output["choices"][0]["message"], "openai"),
            usage=[usage.get("prompt_tokens"), usage.get("completion_tokens")],
            params={k: v for k, v in inputs.items() if k not in ("model", "messages")},
            user_id=event.get("person"), session=event.get("session"), fingerprint=event["fingerprint_id"],
        ))
    return runs, {}


def jsonl_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def jsonl_runs(path: Path) -> tuple[list[dict], dict[str, list]]:
    """Canonical events merged per run, as the archive keeps every phase."""
    merged: dict[str, dict] = {}
    threads: dict[str, list] = {}
    kinds: dict[str, str] = {}
    for event in jsonl_events(path):
        if event["phase"] == "chat":
            threads.setdefault(event["session_id"], []).append(messages(event["message"], "openai")[0])
            continue
        run = merged.setdefault(event["run_id"], _run(id=event["run_id"]))
        if event["phase"] in ("start", "complete"):
            kinds[event["run_id"]] = event["kind"]
        usage = event.get("usage") or {}
        values = {
            "kind": kinds.get(event["run_id"]), "parent": event["parent_run_id"], "name": event["name"],
            "model": event["model"], "input": messages(event["input"], "openai"),
            "output": messages(event["output"], "openai"),
            "usage": [usage["prompt_tokens"], usage["completion_tokens"]] if usage and not usage.get("estimated") else None,
            "params": event["params"] or None, "error": (event["error"] or {}).get("message"),
            "feedback": event["feedback"], "user_id": event["user_id"], "user_props": event["user_props"],
            "tags": event["tags"] or None, "metadata": event["metadata"] or None, "session": event["session_id"],
        }
        for key, value in values.items():
            if value is not None:
                run[key] = value
    for run in merged.values():
        if run["session"] is None and run["parent"] and kinds.get(run["parent"]) in ("thread", "session"):
            run["session"] = run["parent"]
    return list(merged.values()), threads


OTLP_KINDS = {"chat": "llm", "text_completion": "llm", "execute_tool": "tool", "invoke_agent": "agent"}


def _parts_messages(value: Any, system: Any = None) -> list:
    """GenAI JSON messages (role + text parts) as [role, text] pairs, asserting the shape."""
    listed = [{"role": "system", "parts": orjson.loads(system)}] if system else []
    out = []
    for m in listed + orjson.loads(value):
        assert "content" not in m and isinstance(m.get("parts"), list), f"not a GenAI message: {m}"
        texts = [p["content"] for p in m["parts"] if p.get("type") == "text"]
        out.append([m["role"], " ".join(texts)])
    return out


def _prefixed(attrs: dict, prefix: str) -> dict | None:
    found = {k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)}
    return found or None


def _otlp_value(attrs: dict, messages_key: str, *json_keys: str, system: Any = None) -> Any:
    if messages_key in attrs:
        return _parts_messages(attrs[messages_key], system)
    for key in json_keys:
        if key in attrs:
            return unwrap(orjson.loads(attrs[key]))
    return None


def otlp_runs(received) -> tuple[list[dict], dict[str, list]]:
    """Spans as runs, read by the GenAI conventions (Rosetta's own ``rosetta.*`` where they have no word)."""
    runs = []
    for span in received.records("spans"):
        attrs = span["attributes"]
        kind = OTLP_KINDS.get(attrs.get("gen_ai.operation.name")) or attrs.get("rosetta.kind")
        if kind in ("session", "thread"):
            continue
        evaluation = next((e["attributes"] for e in span["events"] if e["name"] == "gen_ai.evaluation.result"), None)
        feedback = _prefixed(attrs, "rosetta.feedback.") or evaluation and {
            k.removeprefix("gen_ai.evaluation.").removeprefix("score."): v for k, v in evaluation.items()}
        own = {k: v for k, v in attrs.items()
               if not k.startswith(("gen_ai.", "rosetta.")) and k not in ("user.id", "error.type")}
        params = {k: v for k, v in (_prefixed(attrs, "gen_ai.request.") or {}).items() if k != "model"}
        usage = [attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")]
        runs.append(_run(
            id=span["span_id"], kind=kind, parent=span["parent_span_id"] or None,
            name=attrs.get("rosetta.name") or span["name"], model=attrs.get("gen_ai.request.model"),
            input=_otlp_value(attrs, "gen_ai.input.messages", "rosetta.input", "gen_ai.tool.call.arguments",
                              system=attrs.get("gen_ai.system_instructions")),
            output=_otlp_value(attrs, "gen_ai.output.messages", "rosetta.output", "gen_ai.tool.call.result"),
            usage=usage if usage != [None, None] else None, params=params or None,
            error=span["status_message"] if span["status_code"] == "STATUS_CODE_ERROR" else None, feedback=feedback,
            user_id=attrs.get("user.id"), user_props=_prefixed(attrs, "rosetta.user_props."),
            tags=attrs.get("rosetta.tags"), metadata={**own, **(_prefixed(attrs, "rosetta.metadata.") or {})} or None,
            session=attrs.get("gen_ai.conversation.id"), incomplete=bool(attrs.get("rosetta.incomplete")),
        ))
    return runs, {}
