"""Fixtures for tests that run the whole system against the real RabbitMQ of this machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system import OpdQueueReader, RunningSystem, S3StandIn, Vhost, start_system


@pytest.fixture(scope="session")
def vhost() -> Iterator[Vhost]:
    """A RabbitMQ vhost of our own: tests never touch a developer's running system."""
    created = Vhost.create()
    yield created
    created.delete()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3StandIn]:
    server = S3StandIn()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: Vhost, s3: S3StandIn) -> Iterator[RunningSystem]:
    running = start_system(tmp_path_factory.mktemp("system"), vhost, s3)
    yield running
    running.stop()


@pytest.fixture
def opd_queues(system: RunningSystem) -> Iterator[OpdQueueReader]:
    reader = OpdQueueReader(system.amqp_uri)
    yield reader
    reader.close()
