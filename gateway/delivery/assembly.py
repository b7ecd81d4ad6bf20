"""Run assembly for record backends (HoneyHive, Voker, OTLP).

Stream dialects report a run as separate start and end/error events; a record backend
wants one record. The halves are merged in the store, per backend, and the record
is emitted once both are there; a run that never ends is flushed after the backend's
`run_timeout`, marked incomplete. For backends that group runs in sessions, a run
with no session joins its parent's, and a root run opens a session of its own.
"""
import time

from mappings.ids import derived_uuid

from ..store import Store

RECORD_DIALECTS = ("honeyhive", "voker", "otlp")  # backends that take a run as one record
_HALVES = ("start", "end", "error")
_FROM_START = ("kind", "name", "model", "provider", "parent_run_id", "session_id", "input", "params",
               "user_id", "user_props", "tags", "metadata", "source", "tenant")
_FROM_END = ("output", "error", "feedback", "metrics")


def _merge(state: dict | None, event: dict) -> dict:
    if state is None:
        state = {**event, "phase": "complete", "started_at": None, "ended_at": None, "halves": []}
    phase = event["phase"]
    state["halves"] = sorted(set(state["halves"]) | {phase})
    if phase == "start":
        for key in _FROM_START:
            value = event.get(key)
            if value not in (None, [], {}):
                state[key] = {**state.get(key, {}), **value} if key == "metadata" else value
        state["started_at"] = event["timestamp"]
        state["raw"] = event.get("raw") or state.get("raw")
    else:
        for key in _FROM_END:
            if event.get(key) is not None:
                state[key] = event[key]
        state["ended_at"] = event["timestamp"]
        state["timestamp"] = event["timestamp"]
        if event.get("metadata"):
            state["metadata"] = {**state.get("metadata", {}), **event["metadata"]}
    usage = _usage(state.get("usage"), event.get("usage"))
    if usage is not None:
        state["usage"] = usage
    return state


def _usage(held: dict | None, new: dict | None) -> dict | None:
    if not new:
        return held
    if not held:
        return new
    merged = {k: new.get(k) if new.get(k) is not None else held.get(k) for k in set(held) | set(new)}
    merged["estimated"] = bool(held.get("estimated") or new.get("estimated"))
    merged["total_tokens"] = (merged.get("prompt_tokens") or 0) + (merged.get("completion_tokens") or 0)
    return merged


def finish(state: dict, incomplete: bool = False) -> dict:
    record = {k: v for k, v in state.items() if k != "halves"}
    record["phase"] = "complete"
    record["incomplete"] = incomplete or "start" not in state["halves"] or len(state["halves"]) < 2
    record["timestamp"] = record.get("ended_at") or record.get("started_at") or record["timestamp"]
    if record.get("raw") and record["source"] in ("llmonitor", "lunary"):
        record["raw"] = None
    return record


class Assembler:
    def __init__(self, store: Store, backend: str, run_timeout: float, sessions: bool):
        self.store = store
        self.backend = backend
        self.run_timeout = run_timeout
        self.sessions = sessions
        self._known_sessions: set[str] = set()
        self.held: dict[str, dict] = {}
        self.done: list[str] = []

    async def feed(self, events: list[dict]) -> list[dict]:
        """The records ready to send; halves still waiting are kept for `commit`."""
        wanted = {e["run_id"] for e in events if e["phase"] in _HALVES}
        wanted |= {e["parent_run_id"] for e in events if e["phase"] == "start" and e.get("parent_run_id")}
        states = await self.store.runs_get(self.backend, sorted(wanted))
        out: list[dict] = []
        self.held, self.done = {}, []
        for event in events:
            if event["phase"] not in _HALVES or event["kind"] == "session":
                out.extend(self._with_session(event, states))
                continue
            run_id = event["run_id"]
            state = _merge(self.held.get(run_id) or states.get(run_id), event)
            if event["phase"] == "start":
                out.extend(self._join_session(state, states))
            if "start" in state["halves"] and len(state["halves"]) > 1:
                self.held.pop(run_id, None)
                states.pop(run_id, None)
                self.done.append(run_id)
                out.append(finish(state))
            else:
                self.held[run_id] = state
        return out

    def _session_start(self, session_id: str, source: dict) -> list[dict]:
        if not self.sessions or session_id in self._known_sessions:
            return []
        self._known_sessions.add(session_id)
        base = {k: v for k, v in source.items() if k != "halves"}
        return [{**base, "kind": "session", "phase": "start", "run_id": session_id, "session_id": session_id,
                 "parent_run_id": None, "name": source.get("name") or "session", "input": None, "output": None,
                 "usage": None, "error": None, "feedback": None, "raw": None,
                 "id": derived_uuid("session", source.get("id") or session_id)}]

    def _join_session(self, state: dict, states: dict) -> list[dict]:
        if not self.sessions or state.get("session_id"):
            return self._session_start(state["session_id"], state) if state.get("session_id") else []
        parent = state.get("parent_run_id")
        parent_state = (self.held.get(parent) or states.get(parent)) if parent else None
        if parent_state and parent_state.get("session_id"):
            state["session_id"] = parent_state["session_id"]
            return []
        state["session_id"] = derived_uuid("session", parent or state["run_id"])
        return self._session_start(state["session_id"], state)

    def _with_session(self, event: dict, states: dict) -> list[dict]:
        if event["kind"] == "session":
            self._known_sessions.add(event["run_id"])
            return [event]
        if event["phase"] == "complete":  # a record that came whole (HoneyHive, Voker) joins or opens a session too
            event = dict(event)
            return self._join_session(event, states) + [event]
        if event.get("session_id"):
            return self._session_start(event["session_id"], event) + [event]
        return [event]

    async def commit(self) -> None:
        """Persist halves still waiting, forget finished runs (after the records were sent)."""
        if self.held:
            await self.store.runs_put(self.backend, self.held, time.time() + self.run_timeout)
        if self.done:
            await self.store.runs_delete(self.backend, self.done)

    async def expired(self, count: int = 500) -> tuple[list[str], list[dict]]:
        """Runs past their timeout, as incomplete records."""
        due = await self.store.runs_due(self.backend, time.time(), count)
        states = await self.store.runs_get(self.backend, due)
        return due, [finish(states[r], incomplete=True) for r in due if r in states]
