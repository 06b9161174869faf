"""Fixtures of the fault suite: throwaway servers and one stack per test.

The PostgreSQL cluster and the Redis server are started once per session on
free ports and belong to the suite alone; each test gets a database, a
storage directory and an empty Redis of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import PostgresCluster, RedisServer, Stack

MakeStack = Callable[..., Stack]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "faults: starts real servers and service processes and injects faults",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in item.nodeid:
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def make_stack(
    tmp_path: Path, postgres: PostgresCluster, redis_server: RedisServer
) -> Iterator[MakeStack]:
    """Builds the test's stack; its processes are stopped afterwards."""
    stacks: list[Stack] = []

    def make(**settings: str) -> Stack:
        if redis_server.process is None or redis_server.process.poll() is not None:
            redis_server.start()
        redis_server.client().flushall()
        stack = Stack(tmp_path, postgres.create_database(), redis_server, settings)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()
