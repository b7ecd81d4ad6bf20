"""Pure translation between vendor dialects and Rosetta's canonical event.

Nothing in this package performs I/O or imports aiohttp or redis: every module is a
function of plain data, so it can be tested with golden payloads alone. A dialect is
one module here (NAME, SHAPE, its parse_*/answer_* ingress functions and `encode`).
"""
