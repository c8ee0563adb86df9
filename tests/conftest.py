"""Shared fixtures: a real single-node prez-server and redis-py clients.

`r` and `r3` connect to one prez-server started for the whole session on a
free port of 127.0.0.1, with every database flushed before each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from prez.testing.kvrunner import Runner
from prez.testing.procs import HOST, ServerProcess

# Fixtures that stand for a real server process: a test that uses one is an
# integration test whatever its file says (`make test-quick` starts none).
SERVER_FIXTURES = frozenset({"prez_server", "r", "r3"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def prez_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(Path(tmp_path_factory.mktemp("prez-single")))
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"prez-server exited with {code}:\n{server.log()}"


def _client(server: ServerProcess, protocol: int) -> redis.Redis:
    return redis.Redis(
        host=HOST, port=server.port, protocol=protocol, socket_timeout=10
    )


@pytest.fixture
def r(prez_server: ServerProcess) -> Iterator[redis.Redis]:
    client = _client(prez_server, 2)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def r3(prez_server: ServerProcess) -> Iterator[redis.Redis]:
    client = _client(prez_server, 3)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def run() -> Runner:
    """Commands against a fresh in-memory store (no server)."""
    return Runner()
