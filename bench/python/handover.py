# SPDX-License-Identifier: MIT
"""Handing a 100 MB NumPy array to another process, three ways, side by side.

  shmalloc       the array was made under shmalloc.numpy(); what goes
                 through the Pipe is its handle (under 200 bytes).
  shared_memory  the array lives in a multiprocessing.shared_memory block;
                 what goes through the Pipe is (name, shape, dtype), and the
                 receiver attaches (shm_open + mmap) and builds the array.
  pickle         a plain array, pickled through the Pipe (its 100 MB copied).

One hand-over is timed from just before the sender's send() to the moment
the receiver holds a usable array and has read its first and last element,
with CLOCK_MONOTONIC (time.monotonic_ns), which is the same clock in both
processes.  A fourth row sends the handle's bytes alone: what the Pipe
itself costs, below which no hand-over through it can go.  The receiver is a separately spawned process, warmed up with
WARMUP hand-overs first (its first shmalloc unpickle connects and learns
the instance once).  Printed: median, min and max of ROUNDS, in µs.

Needs a running shmallocd ($SHMALLOC_SOCKET), or $SHMALLOCD to start one
on a temporary socket.  bench/python/run.sh does all of it.
Usage: handover.py [--rounds N] [--mb N]
"""
import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import shared_memory
from multiprocessing.reduction import ForkingPickler

import numpy as np

import shmalloc

WARMUP = 3


def receiver(conn):
    """Takes what comes, makes it an array, reads both ends, says when."""
    attached = None
    while True:
        kind, payload = conn.recv_bytes(), None
        if kind == b"stop":
            return
        if kind == b"raw":
            conn.recv_bytes()
            conn.send((time.monotonic_ns(), 2.0))
            continue
        if kind == b"shm":
            name, shape, dtype = conn.recv()
            if attached is not None:
                attached.close()
            # (3.11 registers an attach with the resource tracker too; a
            # spawned child shares its parent's, where that is a no-op)
            attached = shared_memory.SharedMemory(name=name)
            a = np.ndarray(shape, dtype, buffer=attached.buf)
        else:
            a = conn.recv()  # shmalloc's handle or the whole pickle
        payload = float(a[0]) + float(a[-1])
        t = time.monotonic_ns()
        conn.send((t, payload))
        del a


def rounds(conn, kind, send, n):
    times = []
    for i in range(WARMUP + n):
        conn.send_bytes(kind)
        t0 = time.monotonic_ns()
        send()
        t1, payload = conn.recv()
        assert payload == 2.0, payload
        if i >= WARMUP:
            times.append((t1 - t0) / 1000)
    return times


def start_daemon():
    """A shmallocd on a temporary socket, when none is given."""
    d = tempfile.mkdtemp(prefix="shma-bench-")
    sock = os.path.join(d, "shmallocd.sock")
    proc = subprocess.Popen([os.environ["SHMALLOCD"], "--socket", sock, "--name",
                             "bench%d" % os.getpid(), "--cleanup"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("shmallocd did not start")
            time.sleep(0.01)
        finally:
            s.close()
    os.environ["SHMALLOC_SOCKET"] = sock
    return proc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    daemon = start_daemon() if "SHMALLOC_SOCKET" not in os.environ else None
    n = args.mb * 1000 * 1000 // 8

    with shmalloc.numpy():
        shared = np.ones(n)
    shared[-1] = 1.0
    shm = shared_memory.SharedMemory(create=True, size=n * 8)
    in_shm = np.ndarray((n,), np.float64, buffer=shm.buf)
    in_shm[:] = 1.0
    plain = np.ones(n)

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    p = ctx.Process(target=receiver, args=(there,))
    p.start()
    handle = bytes(ForkingPickler.dumps(shared))
    results = [
        ("(the Pipe alone, no array)",
         rounds(here, b"raw", lambda: here.send_bytes(handle), args.rounds),
         "%d bytes: the floor" % len(handle)),
        ("shmalloc", rounds(here, b"obj", lambda: here.send(shared), args.rounds),
         "handle of %d bytes" % len(handle)),
        ("multiprocessing.shared_memory",
         rounds(here, b"shm", lambda: here.send((shm.name, (n,), "f8")), args.rounds),
         "name, attach + mmap"),
        ("pickle through a Pipe", rounds(here, b"obj", lambda: here.send(plain), args.rounds),
         "%d MB copied" % args.mb),
    ]
    here.send_bytes(b"stop")
    p.join()
    del in_shm
    shm.close()
    shm.unlink()

    print("Handing a %d MB NumPy array (float64) to another process: %d rounds, µs"
          % (args.mb, args.rounds))
    print("%-31s %10s %10s %10s  %s" % ("", "median", "min", "max", ""))
    for name, t, note in results:
        print("%-31s %10.1f %10.1f %10.1f  %s" % (name, statistics.median(t), min(t), max(t),
                                                  note))
    fastest = min(results[1:], key=lambda r: statistics.median(r[1]))[0]
    print("fastest: %s" % fastest)
    # The array's block goes back before the daemon does: freed after it
    # (at the interpreter's exit), it would reach for a daemon that is gone.
    del shared, results
    shmalloc.disconnect()
    if daemon is not None:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    main()
