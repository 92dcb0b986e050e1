# SPDX-License-Identifier: MIT
"""Functions the tests run in other processes (importable by spawned
multiprocessing workers: conftest puts this directory on sys.path)."""
import numpy as np

import shmalloc


def fill_slice(a, i, n):
    """A pool worker: slice i of the shared array a takes the value i + 1."""
    assert not a.flags.owndata  # a view of the parent's memory, not a copy
    a[i * n:(i + 1) * n] = i + 1
    return shmalloc.ref_of(a.ctypes.data)


def fill_block(b, i, n):
    """As fill_slice, on a Block viewed as float64."""
    np.frombuffer(b, dtype=np.float64)[i * n:(i + 1) * n] = i + 1
    return b.ref


def consume(q, out):
    """Takes given Blocks from q until None, sums each and frees it."""
    while True:
        b = q.get()
        if b is None:
            return
        out.put((b.owner, int(np.frombuffer(b, dtype=np.int64).sum())))
        b.free()
