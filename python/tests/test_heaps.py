# SPDX-License-Identifier: MIT
"""Named heaps from Python: shmalloc.Heap (shma_heap_create(3))."""
import os
import signal
import subprocess
import sys
import time

import pytest

import shmalloc

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20


def in_use():
    return shmalloc.stats()["in_use_bytes"]


def heap_row(name):
    """The stats' row of heap name, or None."""
    for h in shmalloc.stats()["heaps"]:
        if h["name"] == name:
            return h
    return None


def wait_for(cond, what, timeout=20):
    """Polls cond (a state of the daemon), bounded: never a blind sleep."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.01)


def test_a_killed_process_leaks_nothing_of_its_process_heap(name):
    """A process SIGKILLed while it holds 3 043 blocks (small, medium and
    large) in a heap of lifetime PROCESS: the heap goes with it, and the
    instance's in-use bytes come back to where they were (planted bugs:
    Heap.alloc taking from the default heap, whose blocks a dead client
    leaves behind; the daemon not ending a process heap at its creator's
    death)."""
    shmalloc.connect()
    before = in_use()
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "heap_peer.py"), name],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        said = p.stdout.readline().split()
        assert said[0] == "ready", said
        bytes_, blocks = int(said[1]), int(said[2])
        assert blocks >= 3043 and bytes_ >= 3000 * 100 + 40 * 64 * 1024 + 3 * MIB
        row = heap_row(name)
        assert row is not None and row["lifetime"] == "process"
        assert row["creator_pid"] == p.pid and row["blocks"] == blocks
        assert in_use() >= before + bytes_
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    wait_for(lambda: heap_row(name) is None, "the killed process's heap is still listed")
    wait_for(lambda: in_use() <= before,
             "in_use_bytes %d, %d before the killed process" % (in_use(), before))
    with pytest.raises(shmalloc.Error) as e:
        shmalloc.Heap.open(name)
    assert e.value.errno == 2  # ENOENT


def test_create_open_alloc_in_use_destroy(name):
    before = in_use()
    with shmalloc.Heap.create(name, shmalloc.PERSISTENT, max_bytes=4 * MIB) as h:
        assert h.id != 0 and h.name == name and not h.closed
        blocks = [h.alloc(1000, zero=True) for _ in range(100)]
        big = h.alloc(MIB)
        assert bytes(blocks[0]) == bytes(1000)
        used, n = h.in_use()
        assert n >= 101 and used >= 100 * 1000 + MIB
        with pytest.raises(shmalloc.Error) as e:
            shmalloc.Heap.create(name)
        assert e.value.errno == 17  # EEXIST
        with pytest.raises(shmalloc.Error) as e:
            h.alloc(8 * MIB)  # past max_bytes
        assert e.value.errno == 12  # ENOMEM
    assert h.closed
    with pytest.raises(ValueError):
        h.alloc(10)
    same = shmalloc.Heap.open(name)
    assert same.id == h.id
    extra = same.alloc(100)
    v = memoryview(extra)
    with pytest.raises(BufferError):  # a view of a block of it is out
        same.destroy()
    v.release()
    same.destroy()
    # Every Block of it here goes with it, also those the first handle made.
    assert same.closed and extra.freed and big.freed and all(b.freed for b in blocks)
    del blocks, big
    wait_for(lambda: in_use() <= before, "the destroyed heap's bytes are still in use")
    with pytest.raises(shmalloc.Error) as e:
        shmalloc.Heap.open(name)
    assert e.value.errno == 2


def test_heap_cannot_be_made_by_hand():
    with pytest.raises(TypeError):
        shmalloc.Heap()
