"""Answers held to the end of the event loop's turn that made them (gateway/turns.py)."""
import asyncio

from aiohttp import web

from gateway import turns


async def test_an_answer_waits_until_its_turn_has_ended():
    together = turns.answers_together()
    order = []

    async def handler(request):
        asyncio.get_running_loop().call_soon(order.append, "turn over")
        return web.Response(text="ok")

    response = await together(None, handler)
    order.append("answered")
    assert response.text == "ok"
    assert order == ["turn over", "answered"]


async def test_the_answers_of_one_turn_are_held_until_it_ends():
    together = turns.answers_together()
    released = []

    async def handler(request):
        return web.Response(text=str(request))

    async def answer(n):
        released.append((await together(n, handler)).text)

    answers = [asyncio.ensure_future(answer(n)) for n in range(5)]
    await asyncio.sleep(0)  # the turn in which all five are made
    assert released == []
    await asyncio.gather(*answers)
    assert released == ["0", "1", "2", "3", "4"]


async def test_failures_are_not_held():
    together = turns.answers_together()

    async def handler(request):
        raise web.HTTPNotFound()

    try:
        await together(None, handler)
    except web.HTTPNotFound:
        return
    raise AssertionError("the handler's exception was swallowed")
