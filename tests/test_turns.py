"""Answers of a busy turn of the event loop held until it ends (gateway/turns.py)."""
import asyncio

import pytest
from aiohttp import web

from gateway import turns


async def _handler(request):
    return web.Response(text=str(request))


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_lone_answer_goes_at_once():
    together = turns.answers_together()
    for n in range(3):
        order = []
        asyncio.get_running_loop().call_soon(order.append, "turn over")
        response = await together(n, _handler)
        order.append("answered")
        assert response.text == str(n)
        assert order == ["answered"]  # before the turn was over
        await _turns(3)


async def test_the_answers_of_a_busy_turn_are_held_until_it_ends():
    together = turns.answers_together()
    released = []

    async def answer(n):
        released.append((await together(n, _handler)).text)

    answers = [asyncio.ensure_future(answer(n)) for n in range(5)]
    await asyncio.sleep(0)  # the turn in which all five are made
    assert released == ["0"]  # the first could not know that others would follow
    await asyncio.gather(*answers)
    assert released == ["0", "1", "2", "3", "4"]

    # the next turn's answers are held from the first, until a turn makes only one
    later = asyncio.ensure_future(answer("alone, but after a busy turn"))
    await asyncio.sleep(0)
    assert released[5:] == []
    await later
    order = []
    asyncio.get_running_loop().call_soon(order.append, "turn over")
    await together("alone again", _handler)
    order.append("answered")
    assert order == ["answered"]


async def test_failures_are_not_held():
    together = turns.answers_together()

    async def handler(request):
        raise web.HTTPNotFound()

    with pytest.raises(web.HTTPNotFound):
        await together(None, handler)
