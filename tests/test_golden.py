"""Golden payloads: every folder under ``tests/golden`` is one case, run by one test.

    ingress/<dialect>/<case>/case.json      {"description": <what the case pins down>,
                                             "endpoint": <parse function in mappings.<dialect>>,
                                             "args": {<path parameters, e.g. "session_id">}}
                             input.json     the request body
                             expected.json  {"items": [<canonical event> | {"error": <str>}], "ids": [...],
                                             "credential": ..., "context": {...}}, or
                                            {"error": <str>} when the whole request is refused
    egress/<dialect>/<case>/case.json       {"description": ..., "options": {...} for `mappings.<dialect>.encode`}
                            events.json     canonical events; a field left out has `new_event`'s default
                            expected.json   [{"method", "path", "body", "covers"}, ...]

The clock is frozen at `FROZEN_NOW` while a case maps, so an event whose payload carries
no time (Voker events, HoneyHive updates without ``end_time``, LLMonitor/Lunary events
without ``timestamp``) gets that time and the files stay stable. Every ingress case is
mapped twice and must give the same result: ids derived from content must not drift.
Every canonical event in a case, produced or given, is checked against the pydantic model.

``pytest --update-golden`` rewrites every expected.json from the current mappings, to be
reviewed with ``git diff`` before it is committed.
"""
import importlib
import json
from pathlib import Path

import orjson
import pytest

from mappings import times
from mappings.canonical import new_event, validate_event
from mappings.errors import MappingError

GOLDEN = Path(__file__).parent / "golden"
FROZEN_NOW = "2001-02-03T04:05:06.789Z"


def _cases(direction: str) -> list:
    folders = sorted(p.parent for p in (GOLDEN / direction).glob("*/*/case.json"))
    return [pytest.param(f, id=f"{f.parent.name}/{f.name}") for f in folders]


def _load(path: Path):
    return json.loads(path.read_text())


def _plain(value):
    """What a value looks like once sent as JSON (tuples become lists, keys become strings)."""
    return json.loads(orjson.dumps(value))


def _check(folder: Path, actual, update: bool) -> None:
    path = folder / "expected.json"
    if update:
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
        return
    assert path.exists(), f"{path} is missing: run pytest with --update-golden and review it"
    assert actual == _load(path)


def _ingress(folder: Path):
    case = _load(folder / "case.json")
    parse = getattr(importlib.import_module(f"mappings.{folder.parent.name}"), case["endpoint"])
    try:
        parsed = parse(_load(folder / "input.json"), **case.get("args", {}))
    except MappingError as exc:
        return {"error": str(exc)}
    for event in [*parsed.events, *parsed.context.values()]:
        validate_event(event)
    return _plain({
        "items": [{"error": str(i)} if isinstance(i, MappingError) else i for i in parsed.items],
        "ids": parsed.ids,
        "credential": parsed.credential,
        "context": parsed.context,
    })


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(times, "now_iso", lambda: FROZEN_NOW)


@pytest.fixture
def update(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.mark.usefixtures("frozen_clock")
@pytest.mark.parametrize("folder", _cases("ingress"))
def test_ingress(folder: Path, update: bool):
    actual = _ingress(folder)
    assert _ingress(folder) == actual, "mapping the same payload twice gave different events"
    _check(folder, actual, update)


@pytest.mark.parametrize("folder", _cases("egress"))
def test_egress(folder: Path, update: bool):
    case = _load(folder / "case.json")
    events = []
    for given in _load(folder / "events.json"):
        event = {**new_event(given["source"], given["kind"], given["phase"], given["run_id"], given["timestamp"]), **given}
        validate_event(event)
        events.append(event)
    requests = importlib.import_module(f"mappings.{folder.parent.name}").encode(events, case.get("options", {}))
    actual = _plain([
        {"method": r.method, "path": r.path, "body": r.body, "covers": r.covers, **({"headers": r.headers} if r.headers else {})}
        for r in requests
    ])
    _check(folder, actual, update)


def test_every_case_folder_is_complete():
    """A folder without case.json would silently not run, and a dialect without folders would pass as zero cases."""
    for direction, given in (("ingress", "input.json"), ("egress", "events.json")):
        folders = [p for p in (GOLDEN / direction).glob("*/*") if p.is_dir()]
        assert {"llmonitor", "lunary", "honeyhive", "voker"} <= {p.parent.name for p in folders}
        for folder in folders:
            assert (folder / "case.json").is_file() and (folder / given).is_file(), f"{folder} is incomplete"
