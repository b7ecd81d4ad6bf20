"""The memory store hands every backend the same event objects (decoding a copy for each
reader cost a sixth of the gateway's time), which is sound only because nothing after
the store changes an event in place. This holds that line for every stage a forwarder
runs: redaction, run assembly, usage estimates and each dialect's encoder, over the
canonical events of every golden case."""
import copy
import importlib
import json
from pathlib import Path

import pytest

from gateway.delivery.assembly import Assembler
from gateway.enrich import Estimator
from gateway.redact import Redactor
from gateway.store.memory import MemoryStore
from mappings.canonical import new_event

GOLDEN = Path(__file__).parent / "golden"
DIALECTS = ("lunary", "llmonitor", "honeyhive", "voker", "otlp")


def _events() -> list[dict]:
    events = []
    for path in sorted(GOLDEN.glob("egress/*/*/events.json")):
        for given in json.loads(path.read_text()):
            events.append({**new_event(given["source"], given["kind"], given["phase"], given["run_id"],
                                       given["timestamp"]), **given})
    for path in sorted(GOLDEN.glob("ingress/*/*/expected.json")):
        expected = json.loads(path.read_text())
        events += [item for item in expected.get("items", []) if "error" not in item]
        events += list(expected.get("context", {}).values())
    # the same LLM calls as clients that report no usage send them: what the estimator counts
    events += [{**e, "usage": None} for e in events if e["kind"] == "llm" and e.get("usage")]
    for event in events:
        event.setdefault("tenant", "t")
        event.setdefault("id", f"{event['run_id']}-{event['phase']}")
    return events


EVENTS = _events()


def _options(dialect: str) -> dict:
    cases = sorted(GOLDEN.glob(f"egress/{dialect}/*/case.json"))
    return json.loads(cases[0].read_text()).get("options", {}) if cases else {}


@pytest.fixture
def events():
    assert len(EVENTS) > 50 and {e["source"] for e in EVENTS} >= {"lunary", "honeyhive", "voker", "llmonitor"}
    before = copy.deepcopy(EVENTS)
    yield EVENTS
    assert EVENTS == before, "a stage changed an event in place"


def test_usage_estimates_leave_the_events_as_they_were(events):
    assert any(a is not b for a, b in zip(Estimator().events(events), events)), "nothing was estimated"


def test_redaction_leaves_the_events_as_they_were(events):
    redactor = Redactor(["email", "api_key", "card"], [r"[Hh]ello"], ["metadata.user", "input", "user_props.email"], "hash")
    assert [redactor.event(e) for e in events] != events, "nothing was redacted"


async def test_run_assembly_leaves_the_events_as_they_were(events):
    for sessions in (True, False):
        assembler = Assembler(MemoryStore(), "backend", 0, sessions=sessions)  # halves expire at once
        records = await assembler.feed(events)
        await assembler.commit()
        _, expired = await assembler.expired()
        assert records and expired, "nothing was assembled, or no half was left waiting"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_encoding_leaves_the_events_as_they_were(events, dialect):
    mapping = importlib.import_module(f"mappings.{dialect}")
    assert mapping.encode(events, _options(dialect)), f"{dialect} encoded nothing"
