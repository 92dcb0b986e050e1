# SPDX-License-Identifier: MIT
"""A real shmallocd on a temporary socket for the whole session.

The daemon is $SHMALLOCD (scripts/test-python.sh points it at the build's
installed copy), else the shmallocd on PATH.  SHMALLOC_SOCKET is set before
the module first connects, so this process and every process the tests
start (they inherit the environment) use this daemon.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # helpers.py, for multiprocessing's spawned workers too


def _listening(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_daemon(directory, name, *args):
    """A shmallocd of its own on directory/shmallocd.sock, listening when
    this returns: (socket, process, log file).  args: more options."""
    exe = os.environ.get("SHMALLOCD") or shutil.which("shmallocd")
    if not exe:
        pytest.fail("no shmallocd: set SHMALLOCD or put it on PATH")
    sock = os.path.join(directory, "shmallocd.sock")
    log = open(os.path.join(directory, "shmallocd.log"), "w")
    proc = subprocess.Popen([exe, "--socket", sock, "--name", name, "--cleanup", *args],
                            stdout=log, stderr=log)
    # Polled for a condition (the socket answers), never slept on blindly.
    deadline = time.monotonic() + 10
    while not _listening(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            pytest.fail("shmallocd did not listen: " + open(log.name).read())
        time.sleep(0.01)
    return sock, proc, log


def stop_daemon(proc, log):
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="session", autouse=True)
def daemon():
    d = tempfile.mkdtemp(prefix="shma-py-")
    sock, proc, log = start_daemon(d, "py%d" % os.getpid())
    os.environ["SHMALLOC_SOCKET"] = sock
    yield sock
    stop_daemon(proc, log)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def name(request):
    """A root name of this test's own."""
    return "py-%d-%s" % (os.getpid(), request.node.name[:200])
