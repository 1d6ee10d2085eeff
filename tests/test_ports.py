"""The listening ports the tests, benchmarks and `make run` pick for the processes they start (devtools.ports)."""

from __future__ import annotations

from devtools.ports import EPHEMERAL_START, S3_SERVER_WINDOW, free_port


def test_a_process_is_never_handed_a_port_it_was_handed_before_it_is_bound() -> None:
    # a test system picks its four service ports, then its store's, and binds none until each process starts: a port
    # handed out twice went to the store, which bound it first, and the services exited (seen in CI)
    picked = [free_port() for _ in range(1500)]
    assert len(set(picked)) == len(picked)


def test_ports_are_below_the_ephemeral_range_and_apart_from_the_s3_server() -> None:
    for _ in range(200):
        port = free_port()
        assert port < EPHEMERAL_START
        assert not S3_SERVER_WINDOW[0] <= port <= S3_SERVER_WINDOW[1]
