# SPDX-License-Identifier: MIT
"""Separate processes: two started on their own, a Pool, a Queue."""
import multiprocessing as mp
import os
import subprocess
import sys

import numpy as np
import pytest

import helpers
import shmalloc

HERE = os.path.dirname(os.path.abspath(__file__))


def test_two_processes_share_a_64_mib_array_both_ways(name):
    """Each sees the other's writes: no copy on either side (planted bug:
    lookup() returning a copy, or the handler not used)."""
    peer = [sys.executable, os.path.join(HERE, "peer.py")]
    # b starts first and waits for the name (lookup_wait across processes).
    b = subprocess.Popen(peer + ["b", name], stdout=subprocess.PIPE, text=True)
    a = subprocess.Popen(peer + ["a", name], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        said_a = a.stdout.readline().split()
        said_b = b.stdout.readline().split()
        assert said_a[0] == "published" and said_b == ["written", said_a[1]]
        assert b.wait(timeout=60) == 0
        a.stdin.write("go\n")
        a.stdin.flush()
        assert a.stdout.readline().strip() == "ok"
        assert a.wait(timeout=60) == 0
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_pool_of_4_fills_slices_of_one_array(method):
    n = 1 << 20
    with shmalloc.numpy():
        a = np.zeros(4 * n)
    with mp.get_context(method).Pool(4) as pool:
        refs = pool.starmap(helpers.fill_slice, [(a, i, n) for i in range(4)])
    assert refs == [shmalloc.ref_of(a.ctypes.data)] * 4
    for i in range(4):  # planted bug: the array pickled by value
        assert (a[i * n:(i + 1) * n] == i + 1).all()


def test_a_pool_of_4_fills_slices_of_one_block():
    n = 1 << 18
    b = shmalloc.alloc(4 * n * 8)
    with mp.get_context("spawn").Pool(4) as pool:
        refs = pool.starmap(helpers.fill_block, [(b, i, n) for i in range(4)])
    assert refs == [b.ref] * 4
    a = np.frombuffer(b, dtype=np.float64)
    assert all((a[i * n:(i + 1) * n] == i + 1).all() for i in range(4))
    del a
    b.free()


def test_given_blocks_through_a_queue_are_the_consumers():
    ctx = mp.get_context("spawn")
    q, out = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=helpers.consume, args=(q, out))
    p.start()
    sent = []
    for k in range(1, 9):
        b = shmalloc.alloc(k << 20)
        np.frombuffer(b, dtype=np.int64)[:] = k
        sent.append(b.ref)
        q.put(b.give())
        del b  # the queue's feeder pickles it: the handle moves ownership
    q.put(None)
    got = [out.get(timeout=60) for _ in range(8)]
    p.join(timeout=60)
    assert p.exitcode == 0
    # each arrived as its owner (planted bug: give() not moving it) and
    # was freed there without an error
    assert got == [(True, k * (k << 20) // 8) for k in range(1, 9)]


EXAMPLES = os.path.join(HERE, "..", "examples")


def test_the_producer_and_consumer_examples_run():
    run = [sys.executable]
    prod = subprocess.Popen(run + [os.path.join(EXAMPLES, "producer.py")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert prod.stdout.readline().startswith("producer: published 128 MB")
        cons = subprocess.run(run + [os.path.join(EXAMPLES, "consumer.py")],
                              capture_output=True, text=True, timeout=120)
        assert cons.returncode == 0, cons.stderr
        said = prod.stdout.readline().split()
        assert prod.wait(timeout=60) == 0
        assert said[:7] == ["producer:", "the", "consumer", "says", "the", "sum", "is"]
        assert said[8] == "(here:" and said[7] == said[9].rstrip(")")
    finally:
        if prod.poll() is None:
            prod.kill()
            prod.wait()


def test_the_pool_example_runs():
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, "pool.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pool: slices hold [0, 1, 2, 3]" in out.stdout
    assert out.stdout.count("owner=True") == 3
