# SPDX-License-Identifier: MIT
"""Block: the buffer protocol, the ownership rules, handles, roots, errors.

Where a test says "planted bug", it is the change to the module that makes
it fail.  Several use the large-block cache to see whether memory went
back: a process reuses a large block it freed for the next allocation of
that size (client/lib/largecache.c), so "the next block has the freed one's
address" is what freeing looks like, deterministically.
"""
import errno
import os
import pickle
import signal
import threading
import time

import numpy as np
import pytest

import shmalloc

MIB = 1 << 20


def test_buffer_protocol_is_the_shared_memory_itself():
    b = shmalloc.alloc(4096)
    assert len(b) == 4096 and b.owner and not b.freed
    with memoryview(b) as m:
        assert not m.readonly and m.nbytes == 4096
        m[:5] = b"hello"
    assert bytes(b)[:5] == b"hello"
    a = np.frombuffer(b, dtype=np.uint8)  # planted bug: a read-only buffer
    assert a.ctypes.data == b.address and a.flags.writeable
    a[5] = ord("!")
    n = np.ndarray((512,), dtype=np.float64, buffer=b)
    assert n.ctypes.data == b.address
    assert bytes(b)[:6] == b"hello!"
    assert shmalloc.owns(b.address) and b.ref == shmalloc.ref_of(b.address)
    del a, n
    b.free()


def test_zeroed_alloc():
    b = shmalloc.alloc(3 * MIB, zero=True)
    assert not any(bytes(b))
    b.free()


def test_free_twice_is_refused():
    b = shmalloc.alloc(64)
    b.free()
    assert b.freed and not b.owner
    # Planted bug: free() not clearing the pointer frees the block again
    # (the library aborts on the double free).
    with pytest.raises(ValueError, match="freed"):
        b.free()


def test_a_freed_block_refuses_every_use():
    b = shmalloc.alloc(64)
    b.free()
    with pytest.raises(BufferError):
        memoryview(b)
    for use in (len, lambda b: b.ref, lambda b: b.address, pickle.dumps, lambda b: b.give()):
        with pytest.raises(ValueError):
            use(b)
    assert "freed" in repr(b)


def test_no_free_while_a_view_is_exported():
    b = shmalloc.alloc(MIB)
    m = memoryview(b)
    a = np.frombuffer(b, dtype=np.uint8)
    with pytest.raises(BufferError, match="2 view"):  # planted bug: exports not counted
        b.free()
    m.release()
    with pytest.raises(BufferError, match="1 view"):
        b.free()
    del a
    b.free()


def test_the_owner_frees_when_collected():
    b = shmalloc.alloc(2 * MIB)
    address = b.address
    del b  # planted bug: dealloc not freeing: the next block is elsewhere
    c = shmalloc.alloc(2 * MIB)
    assert c.address == address
    c.free()


def test_a_borrower_frees_nothing():
    b = shmalloc.alloc(2 * MIB)
    c = pickle.loads(pickle.dumps(b))
    assert c.address == b.address and not c.owner
    with pytest.raises(ValueError, match="not the owner"):
        c.free()
    del c  # planted bug: a borrower freeing when collected
    d = shmalloc.alloc(2 * MIB)
    assert d.address != b.address
    d.free()
    b.free()


@pytest.mark.parametrize("size", [0, 1, 4096, 200 * 1024, 64 * MIB, 256 * MIB])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_handle_is_small_whatever_the_size(size, protocol):
    b = shmalloc.alloc(size)
    h = pickle.dumps(b, protocol=protocol)
    assert len(h) < 200  # planted bug: reducing to the bytes
    c = pickle.loads(h)
    assert (c.ref, len(c), c.owner) == (b.ref, size, False)
    b.free()


def test_give_moves_ownership_with_the_next_pickle():
    b = shmalloc.alloc(2 * MIB)
    assert b.give() is b and not b.owner
    with pytest.raises(ValueError, match="given away"):
        b.free()
    moved = pickle.loads(pickle.dumps(b))
    lent = pickle.loads(pickle.dumps(b))  # only the first handle moves it
    assert moved.owner and not lent.owner and moved.ref == lent.ref == b.ref
    address = b.address
    del b, lent
    moved.free()
    c = shmalloc.alloc(2 * MIB)
    assert c.address == address
    c.free()


def test_a_given_block_never_pickled_is_freed_when_collected():
    b = shmalloc.alloc(2 * MIB)
    address = b.give().address
    del b  # nobody else can have it: it is freed, not leaked
    c = shmalloc.alloc(2 * MIB)
    assert c.address == address
    c.free()


def test_a_forked_child_holds_its_parents_owners_as_borrowers():
    b = shmalloc.alloc(2 * MIB)
    np.frombuffer(b, dtype=np.uint8)[:] = 1
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if b.owner:
                code = 1
            try:
                b.free()
                code = 2  # planted bug: the owner as a flag, not a pid
            except ValueError:
                pass
            del b
            c = shmalloc.alloc(2 * MIB)
            np.frombuffer(c, dtype=np.uint8)[:] = 7
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert b.owner and np.frombuffer(b, dtype=np.uint8).max() == 1
    b.free()


def test_a_handle_of_another_instance_is_refused():
    b = shmalloc.alloc(64)
    with pytest.raises(ValueError, match="another shmalloc instance"):
        shmalloc.Block._rebuild(shmalloc.instance() ^ 1, b.ref, len(b), False)
    with pytest.raises(ValueError, match="not in this process's heap"):
        shmalloc.view(shmalloc.instance(), 1 << 62, 64)
    b.free()


def test_errors_carry_errno_and_the_librarys_text(name):
    with pytest.raises(shmalloc.Error) as e:
        shmalloc.lookup(name)
    assert isinstance(e.value, OSError)
    assert e.value.errno == errno.ENOENT
    assert e.value.strerror == shmalloc.strerror(errno.ENOENT)
    with pytest.raises(shmalloc.Error) as e:
        shmalloc.alloc(1 << 62)
    assert e.value.errno == errno.ENOMEM


def test_publish_lookup_unpublish(name):
    b = shmalloc.alloc(100)
    memoryview(b)[:3] = b"abc"
    shmalloc.publish(name, b)
    with pytest.raises(shmalloc.Error) as e:
        shmalloc.publish(name, b)
    assert e.value.errno == errno.EEXIST
    c = shmalloc.lookup(name)
    assert c.ref == b.ref and len(c) >= 100 and not c.owner
    assert bytes(c)[:3] == b"abc"
    shmalloc.unpublish(name)
    with pytest.raises(shmalloc.Error):
        shmalloc.unpublish(name)
    with pytest.raises(ValueError, match="not a block"):
        shmalloc.publish(name, bytearray(10))
    b.free()


TREE_HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                           "client", "lib", "shmalloc.h")


def test_built_with_the_librarys_lookup_wait():
    """This tree's library has shma_lookup_wait, so setup.py's probe must
    have found it: a build that fell back to polling (the probe failing to
    compile or link, planted bug: a typo in its program) fails here."""
    with open(TREE_HEADER) as f:
        declared = "shma_lookup_wait(" in f.read()
    assert declared, "client/lib/shmalloc.h no longer declares shma_lookup_wait"
    assert shmalloc.HAVE_LOOKUP_WAIT is True


def _connections_of_this_process():
    return sum(c["pid"] == os.getpid() for c in shmalloc.stats()["clients"])


def _until_parked(baseline, waiter):
    """Until the daemon lists a connection of this process beyond baseline:
    the one shma_lookup_wait opens for its wait (polling lookup() opens
    none).  Polled for that condition, with a deadline; a thread that holds
    the GIL while waiting never lets this run at all."""
    deadline = time.monotonic() + 10
    while _connections_of_this_process() <= baseline:
        assert waiter.is_alive(), "the waiter ended before it waited"
        assert time.monotonic() < deadline, "no lookup parked in the daemon"
        time.sleep(0.005)


def test_lookup_wait_times_out(name):
    with pytest.raises(shmalloc.Error) as e:
        shmalloc.lookup_wait(name, timeout=0.05)
    assert e.value.errno == errno.ETIMEDOUT
    with pytest.raises(shmalloc.Error) as e:
        shmalloc.lookup_wait(name, timeout=0)
    assert e.value.errno == errno.ETIMEDOUT


def test_lookup_wait_releases_the_gil(name):
    """Another thread publishes while this one waits, parked in the daemon
    (its connection is seen first, so the name is not published before the
    wait began): it can only if the wait let go of the GIL (planted bug: no
    Py_BEGIN_ALLOW_THREADS around shma_lookup_wait in roots.c, and the
    waiter times out with the GIL held), and sees a parked wait only on the
    library's real wait (planted bug: HAVE_LOOKUP_WAIT 0, lookup() polled)."""
    b = shmalloc.alloc(64)
    got = []
    baseline = _connections_of_this_process()

    def waiter():
        try:
            got.append(shmalloc.lookup_wait(name, timeout=20))
        except shmalloc.Error as e:
            got.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    try:
        _until_parked(baseline, t)
    finally:
        shmalloc.publish(name, b)
        t.join()
    assert isinstance(got[0], shmalloc.Block) and got[0].ref == b.ref
    shmalloc.unpublish(name)
    del got
    b.free()


class _Interrupted(Exception):
    pass


def test_lookup_wait_is_interrupted_by_a_signal(name):
    """A signal's handler runs during the wait (Ctrl-C ends it): the wait is
    cut in slices with PyErr_CheckSignals between them (planted bug: no
    check, and the wait goes on until the fallback publishes the name)."""
    b = shmalloc.alloc(64)
    published, done = threading.Event(), threading.Event()
    baseline = _connections_of_this_process()
    failed = []

    def interrupter():
        try:
            _until_parked(baseline, threading.main_thread())
            os.kill(os.getpid(), signal.SIGUSR1)
        except AssertionError as e:
            failed.append(e)
        # Only so that a wait that never sees the signal does not hang the
        # suite: the test fails then, as published is set.
        if failed or not done.wait(20):
            published.set()
            shmalloc.publish(name, b)

    def handler(signum, frame):
        raise _Interrupted()

    old = signal.signal(signal.SIGUSR1, handler)
    t = threading.Thread(target=interrupter)
    t.start()
    try:
        with pytest.raises(_Interrupted):
            shmalloc.lookup_wait(name)  # no timeout
    finally:
        done.set()
        t.join()
        signal.signal(signal.SIGUSR1, old)
        if published.is_set():
            shmalloc.unpublish(name)
        b.free()
    assert not failed, failed
    assert not published.is_set(), "the wait saw the signal only once the name came"


WAITS_THEN_HOLD = """
import errno, shmalloc, sys
shmalloc.connect(sys.argv[1])
for i in range(int(sys.argv[2])):
    try:
        shmalloc.lookup_wait("never", timeout=0.001)
    except shmalloc.Error as e:
        if e.errno != errno.ETIMEDOUT:
            print("wait", i, e.strerror, flush=True)
            break
print("done", flush=True)
sys.stdin.read()  # alive until the test is done
"""


def test_waits_leave_the_daemon_usable(tmp_path):
    """Waits that time out leave nothing behind in the daemon: after more
    of them than --uid-max-orphans (4 here, 1024 by default) in a process
    still alive, that process waits again and another connects.  (Each wait
    says Hello on a connection of its own; its control block was kept as an
    orphan until the process exited, until the daemon learnt to drop a
    block never used as a cache at its goodbye.)"""
    import subprocess
    import sys
    from conftest import start_daemon, stop_daemon
    sock, proc, log = start_daemon(str(tmp_path), "orphans", "--uid-max-orphans", "4")
    waiter = subprocess.Popen([sys.executable, "-c", WAITS_THEN_HOLD, sock, "8"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        said = waiter.stdout.readline().strip()
        other = subprocess.run(
            [sys.executable, "-c", "import shmalloc, sys; shmalloc.connect(sys.argv[1])", sock],
            capture_output=True, text=True, timeout=60)
    finally:
        waiter.stdin.close()
        waiter.wait(timeout=60)
        stop_daemon(proc, log)
    assert said == "done"
    assert other.returncode == 0, other.stderr


def test_stats_is_a_dict():
    b = shmalloc.alloc(5 * MIB)
    s = shmalloc.stats()
    assert isinstance(s, dict) and s["in_use_bytes"] >= 5 * MIB
    assert any(c["pid"] == os.getpid() for c in s["clients"])
    assert shmalloc.same_address() in (True, False)
    b.free()


def test_no_daemon_is_an_error_with_the_librarys_text(tmp_path):
    """In a process of its own (this one is connected already).  The text
    is shma_strerror's in that process: the library's note of its last
    failed connection names the socket, so this process's strerror of the
    same errno differs (planted bug: strerror taken from os.strerror)."""
    import subprocess
    import sys
    code = ("import shmalloc, sys\n"
            "try:\n    shmalloc.connect(sys.argv[1])\n"
            "except shmalloc.Error as e:\n"
            "    print(e.errno, e.strerror == shmalloc.strerror(e.errno), e.strerror)\n")
    sock = str(tmp_path / "none.sock")
    out = subprocess.run([sys.executable, "-c", code, sock], capture_output=True,
                         text=True, timeout=60)
    err, same, text = out.stdout.split(" ", 2)
    assert int(err) == errno.ECONNREFUSED  # also when the socket is not there
    assert same == "True" and sock in text
