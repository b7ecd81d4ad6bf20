"""Answers written together, when the event loop's turn that made them is over.

Writing to a socket whose reader sleeps makes the writer pay for waking it. On the
2-core virtual machines Rosetta is measured on, a 300-byte send on loopback cost 3–9 µs
when the reader was busy and 40–250 µs (by run) when it had been idle for 0.1–2 ms
(`python -m tests.perf.wakeup`). A client waiting on a busy gateway idles between
answers, so an answer written the moment it was ready paid that wake-up nearly every
time (the answer's send was a seventh of a Lunary request's cost). Held to the end of
the turn, the answers of one turn go out close together and share one. Like Netty's
flush consolidation, it trades a turn of latency for fewer costly writes; the
interleaved A/B runs are in the README.

Only a busy gateway holds answers: one whose turn, or the last turn that made answers,
made more than one. Under light load an answer is alone in its turn, has no one to share
a wake-up with, and goes at once: held, it would wait behind whatever the next turn
runs first (such as the delivery its own request woke).
"""
import asyncio

from aiohttp import web


def answers_together():
    """A middleware that holds each answer of a busy turn until the turn has ended."""
    turn_end: asyncio.Future | None = None
    made = 0  # answers made in the current turn
    made_before = 0  # in the last turn that made any

    def this_turn() -> asyncio.Future:
        nonlocal turn_end, made, made_before
        if turn_end is None or turn_end.done():
            loop = asyncio.get_running_loop()
            turn_end = loop.create_future()
            loop.call_soon(turn_end.set_result, None)
            made_before, made = made, 0
        made += 1
        return turn_end

    @web.middleware
    async def together(request: web.Request, handler) -> web.StreamResponse:
        response = await handler(request)
        turn = this_turn()
        if made > 1 or made_before > 1:
            await turn
        return response

    return together
