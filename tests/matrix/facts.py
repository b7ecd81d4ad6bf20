"""What each scenario must deliver, and which fields each dialect can carry at all.

A cell asserts a field when the scenario has it, the ingress dialect can express it and
the egress dialect can carry it; `LOSSES` lists the pairs where a field both sides know
still has no counterpart on the way through, and why.
"""
FIELDS = ("id", "kind", "parent", "name", "model", "input", "output", "usage", "params", "error",
          "feedback", "user_id", "user_props", "tags", "metadata", "session", "thread")
INGRESS = ("llmonitor", "lunary", "honeyhive", "voker", "otlp")
EGRESS = ("lunary", "llmonitor", "honeyhive", "voker", "otlp", "jsonl")
SCENARIOS = ("llm_call", "agent", "error", "feedback", "thread")

_LLM = {"kind": "llm", "name": "gpt-4o-mini", "model": "gpt-4o-mini"}
FACTS = {
    "llm_call": {"llm": {**_LLM, "input": [["system", "Be brief."], ["user", "Hello {tag}"]],
                         "output": [["assistant", "Hi {tag}"]], "usage": [12, 3], "params": {"temperature": 0},
                         "user_id": "user-{tag}", "user_props": {"plan": "pro"}, "tags": ["matrix"],
                         "metadata": {"env": "test"}}},
    "agent": {
        "agent": {"kind": "agent", "name": "support-agent", "input": "Weather in Paris? {tag}",
                  "output": "20 degrees {tag}", "user_id": "user-{tag}", "tags": ["matrix"], "metadata": {"env": "test"}},
        "llm": {**_LLM, "parent": "agent", "input": [["user", "Weather in Paris? {tag}"]],
                "output": [["assistant", "Calling get_weather"]], "usage": [20, 5]},
        "tool": {"kind": "tool", "parent": "agent", "name": "get_weather", "input": {"city": "Paris"}, "output": {"temp": 20}},
    },
    "error": {"llm": {**_LLM, "input": [["user", "Fail {tag}"]], "error": "rate limited"}},
    "feedback": {"llm": {**_LLM, "input": [["user", "Rate me {tag}"]], "output": [["assistant", "Rated {tag}"]],
                         "usage": [4, 2], "feedback": {"thumb": "up"}}},
    "thread": {
        "llm": {**_LLM, "input": [["user", "Question one {tag}"]], "output": [["assistant", "Answer one {tag}"]],
                "usage": [6, 4], "session": "thread"},
        "llm2": {**_LLM, "input": [["user", "Question two {tag}"]], "output": [["assistant", "Answer two {tag}"]],
                 "usage": [7, 4], "session": "thread"},
    },
}
# Lunary's own form of a two-turn thread is chat messages, not LLM runs.
THREAD_MESSAGES = [["user", "Question one {tag}"], ["assistant", "Answer one {tag}"],
                   ["user", "Question two {tag}"], ["assistant", "Answer two {tag}"]]
# OTLP says what an agent did as messages, and feedback as an evaluation event (name, label).
_OTLP_AGENT = {**FACTS["agent"], "agent": {**FACTS["agent"]["agent"], "input": [["user", "Weather in Paris? {tag}"]],
                                           "output": [["assistant", "20 degrees {tag}"]]}}
FACTS_BY_INGRESS = {
    "lunary": {"thread": {"thread": {"thread": THREAD_MESSAGES}}},
    "otlp": {"agent": _OTLP_AGENT,
             "feedback": {"llm": {**FACTS["feedback"]["llm"], "feedback": {"name": "thumb", "label": "up"}}}},
}

_ALL = frozenset(FIELDS)
CAN_SEND = {
    "llmonitor": _ALL - {"thread"},
    "lunary": _ALL,
    "honeyhive": _ALL - {"tags", "thread"},
    "voker": frozenset({"kind", "name", "model", "input", "output", "usage", "params", "user_id", "user_props", "session"}),
    # no convention for user properties or tags (rosetta.* attributes are the gateway's own)
    "otlp": _ALL - {"user_props", "tags", "thread"},
}
CAN_CARRY = {
    "llmonitor": _ALL,
    "lunary": _ALL,
    "honeyhive": _ALL,
    "voker": frozenset({"kind", "name", "model", "input", "output", "usage", "params", "user_id", "session"}),
    "otlp": _ALL,
    "jsonl": _ALL,
}
# scenarios a client of the dialect cannot produce at all: not generated
NOT_EXPRESSIBLE = {"voker": {"agent": "no tool or agent runs", "error": "no error field", "feedback": "no feedback call"}}
# kinds the ingress dialect has no word for, as they arrive
KIND_AS_SENT = {"honeyhive": {"agent": "chain"}}
# a GenAI span is named "{operation} {model or name}", and the run keeps the span's name ...
SPAN_NAMES = {"llm": "chat {}", "agent": "invoke_agent {}", "tool": "execute_tool {}"}
# ... except where the backend names an llm run by its model
NAMED_BY_MODEL = frozenset({"lunary", "llmonitor", "voker"})
# (ingress, egress) -> {field: what happens}
_NO_THREAD_RUN = ("Lunary groups runs only under a thread run or chat messages; {} names no run, "
                  "so it is not sent (it stays in the JSONL archive)").format
_LATE_FEEDBACK = ("feedback given after the run ended has no span to ride on (an exported span is final, and "
                  "the evaluation event belongs to its span): not sent (it stays in the JSONL archive)")
LOSSES = {
    ("llmonitor", "voker"): {"session": "a v0 conversation is a parent run and Voker has no parent link: "
                                        "the calls arrive without a session"},
    ("voker", "lunary"): {"session": _NO_THREAD_RUN("a Voker session")},
    ("voker", "llmonitor"): {"session": _NO_THREAD_RUN("a Voker session")},
    ("lunary", "otlp"): {"thread": "a chat message is no run, so no span: not sent (it stays in the JSONL archive)",
                         "feedback": _LATE_FEEDBACK},
    ("llmonitor", "otlp"): {"feedback": _LATE_FEEDBACK,
                            "session": "a v0 conversation is a parent run: it arrives as the parent span "
                                       "(rosetta.kind thread), with no gen_ai.conversation.id"},
    ("honeyhive", "otlp"): {"feedback": _LATE_FEEDBACK},
    ("otlp", "lunary"): {"session": _NO_THREAD_RUN("a gen_ai.conversation.id")},
    ("otlp", "llmonitor"): {"session": _NO_THREAD_RUN("a gen_ai.conversation.id")},
}


def facts(ingress: str, scenario: str) -> dict:
    return FACTS_BY_INGRESS.get(ingress, {}).get(scenario, FACTS[scenario])


def asserted(ingress: str, egress: str, role_facts: dict) -> dict:
    """The facts of one run this pair must deliver."""
    lost = LOSSES.get((ingress, egress), {})
    out = {k: v for k, v in role_facts.items()
           if k in CAN_SEND[ingress] and k in CAN_CARRY[egress] and k not in lost}
    if "kind" in out:
        out["kind"] = KIND_AS_SENT.get(ingress, {}).get(out["kind"], out["kind"])
    if "name" in out and ingress == "otlp" and not (role_facts["kind"] == "llm" and egress in NAMED_BY_MODEL):
        out["name"] = SPAN_NAMES[role_facts["kind"]].format(out["name"])
    return out


def cells() -> list[tuple[str, str, str]]:
    return [(i, e, s) for i in INGRESS for e in EGRESS for s in SCENARIOS if s not in NOT_EXPRESSIBLE.get(i, {})]
