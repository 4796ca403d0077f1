"""The embedded redis-server keeps everything under the instance folder and recovers from a killed run."""

from __future__ import annotations

import os
import signal
import tempfile
import time

import psutil
import pytest

from ccp.extensions import SOCKET_PATH_MAX, EmbeddedRedis


@pytest.fixture
def embedded(tmp_path):
    started = []

    def start(instance_dir=tmp_path / "instance"):
        server = EmbeddedRedis(instance_dir)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        pid = server._pid()
        if pid:
            os.kill(pid, signal.SIGCONT)
        server.stop()


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_socket_pid_log_and_dump_live_in_the_instance_folder(embedded, tmp_path):
    server = embedded()
    instance = tmp_path / "instance"
    assert server.url == f"unix://{instance / 'redis' / 'redis.sock'}"
    assert server.socket.is_socket()
    assert oct((instance / "redis").stat().st_mode & 0o777) == "0o700"
    proc = psutil.Process(server._pid())
    assert proc.cwd() == str(instance)  # the dump (redis.db) is written here
    tmp = tempfile.gettempdir()
    assert not any(f.path.startswith(tmp + "/") for f in proc.open_files()), proc.open_files()
    server.stop()
    assert not server.socket.exists() and not server.pid_file.exists()
    assert _wait_gone(proc.pid)


def test_a_second_start_joins_the_running_server(embedded):
    first = embedded()
    second = embedded()
    assert second._pid() == first._pid()
    assert second._client().ping()


def test_a_killed_server_leaves_a_stale_socket_that_the_next_start_clears(embedded):
    first = embedded()
    pid = first._pid()
    os.kill(pid, signal.SIGKILL)
    assert _wait_gone(pid)
    assert first.socket.exists(), "SIGKILL leaves the socket file behind"
    second = embedded()
    assert second._pid() != pid and second._client().ping()


def test_a_server_of_this_folder_that_stopped_answering_is_replaced(embedded):
    first = embedded()
    pid = first._pid()
    os.kill(pid, signal.SIGSTOP)
    second = embedded()
    assert _wait_gone(pid), "the hung server must be stopped, not left sharing the dump file"
    assert second._pid() != pid and second._client().ping()


def test_an_over_long_instance_folder_gets_a_short_private_socket_folder(embedded, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = embedded(deep)
    assert len(os.fsencode(server.socket)) <= SOCKET_PATH_MAX
    assert not server.socket.is_relative_to(deep)
    assert server._client().ping()
    folder = server.socket.parent
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert EmbeddedRedis(deep).socket == server.socket, "the fallback is deterministic, so a stale one is found"
    server.stop()
    assert not folder.exists()


def test_release_at_exit_stops_the_server_only_when_no_other_client_is_connected(embedded):
    import redis

    server = embedded()
    ours = redis.Redis(unix_socket_path=str(server.socket))
    ours.ping()
    server.pools.append(ours.connection_pool)  # this process's app connection: closed by release
    other = redis.Redis(unix_socket_path=str(server.socket))
    other.ping()  # e.g. a `ccp worker` that joined: it still needs the server
    server.release()
    assert server._client().ping()
    other.close()
    server.release()
    assert not server.socket.exists() and not server._answers()
