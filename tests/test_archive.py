"""The archive file: kept open between batches, reopened when rotated or removed, every
batch on disk when `write` returns."""
import os

import orjson
import pytest

from gateway.config import Backend
from gateway.delivery.archive import Archive
from gateway.delivery.forwarder import Forwarder
from gateway.store import Entry
from gateway.store.memory import MemoryStore
from mappings.canonical import new_event


def _lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_batches_share_one_open_file_and_each_is_flushed(tmp_path):
    path = tmp_path / "events.jsonl"
    archive = Archive(path, recheck=3600)
    archive.write([{"n": 1}])
    held = archive._file
    assert _lines(path) == [{"n": 1}]
    archive.write([{"n": 2}, {"n": 3}])
    assert archive._file is held
    assert _lines(path) == [{"n": 1}, {"n": 2}, {"n": 3}]
    archive.close()


def test_a_rotated_file_is_left_for_a_new_one_at_the_path(tmp_path):
    path = tmp_path / "events.jsonl"
    archive = Archive(path, recheck=0)
    archive.write([{"n": 1}])
    os.rename(path, tmp_path / "events.jsonl.1")
    archive.write([{"n": 2}])
    assert _lines(tmp_path / "events.jsonl.1") == [{"n": 1}]
    assert _lines(path) == [{"n": 2}]
    archive.close()


def test_a_removed_file_is_created_again(tmp_path):
    path = tmp_path / "events.jsonl"
    archive = Archive(path, recheck=0)
    archive.write([{"n": 1}])
    path.unlink()
    archive.write([{"n": 2}])
    assert _lines(path) == [{"n": 2}]
    archive.close()


def test_a_truncated_file_is_appended_to_from_its_new_end(tmp_path):
    path = tmp_path / "events.jsonl"
    archive = Archive(path, recheck=3600)
    archive.write([{"n": 1}, {"n": 2}])
    os.truncate(path, 0)
    archive.write([{"n": 3}])
    assert _lines(path) == [{"n": 3}]
    archive.close()


def test_a_failed_write_closes_the_file_and_the_retry_opens_it_again(tmp_path):
    path = tmp_path / "events.jsonl"
    archive = Archive(path, recheck=3600)
    archive.write([{"n": 1}])
    with pytest.raises(TypeError):
        archive.write([{"n": object()}])
    assert archive._file is None
    archive.write([{"n": 2}])
    assert _lines(path) == [{"n": 1}, {"n": 2}]
    archive.close()


async def test_the_archive_writes_the_stores_json_of_an_event_it_did_not_change(tmp_path):
    """An entry read back in the process that queued it carries the JSON the store made of
    each event: the archive writes that as it stands, and encodes afresh only an event the
    forwarder changed (here: its usage estimated)."""
    backend = Backend(name="archive", dialect="jsonl", path=str(tmp_path / "events.jsonl"))
    forwarder = Forwarder(backend, MemoryStore(), None)
    reported = {**new_event("lunary", "llm", "complete", "r1", "2026-01-05T10:00:00.000Z"),
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    unreported = {**new_event("lunary", "llm", "complete", "r2", "2026-01-05T10:00:00.000Z"), "output": "hello world"}
    stored = [b'{"as":"the store made it"}', b'{"stale":true}']
    await forwarder.process([Entry("1-1", [reported, unreported], encoded=stored)])
    forwarder.archive.close()
    first, second = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert first == stored[0]
    assert orjson.loads(second)["usage"]["estimated"] is True and orjson.loads(second)["run_id"] == "r2"
