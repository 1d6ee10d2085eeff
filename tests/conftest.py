"""Fixtures for tests that run the whole system against the real RabbitMQ of this machine."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from devtools.seaweedfs import LocalS3Server
from tests.system import OpdQueueReader, RunningSystem, Vhost, s3_server, start_system


@pytest.fixture(scope="session")
def vhost() -> Iterator[Vhost]:
    """A RabbitMQ vhost of our own: tests never touch a developer's running system."""
    created = Vhost.create()
    yield created
    created.delete()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    server = s3_server(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory, vhost: Vhost, s3: LocalS3Server) -> Iterator[RunningSystem]:
    running = start_system(tmp_path_factory.mktemp("system"), vhost, s3)
    yield running
    running.stop()


@pytest.fixture
def opd_queues(system: RunningSystem) -> Iterator[OpdQueueReader]:
    reader = OpdQueueReader(system.amqp_uri)
    yield reader
    reader.close()


LOG_LINES_ON_FAILURE = 60


def systems_used_by(item: pytest.Item) -> list[RunningSystem]:
    """The running systems a test had as fixtures (directly, or inside a module's setup object)."""
    found: list[RunningSystem] = []
    for value in getattr(item, "funcargs", {}).values():
        for candidate in (value, getattr(value, "system", None)):
            if isinstance(candidate, RunningSystem) and all(candidate is not seen for seen in found):
                found.append(candidate)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed end-to-end test shows what the services logged last: the only record of why a message was late."""
    report = yield
    if report.failed and call.when == "call":
        for running in systems_used_by(item):
            try:
                tail = running.logs().splitlines()[-LOG_LINES_ON_FAILURE:]
            except OSError as exc:
                tail = [f"(log not readable: {exc})"]
            report.sections.append(
                (f"system log, last {LOG_LINES_ON_FAILURE} lines ({running.log_path})", "\n".join(tail))
            )
    return report
