# SPDX-License-Identifier: MIT
"""multiprocessing with shmalloc: a Pool fills one array, a Queue moves Blocks.

Run it with a shmallocd listening (SHMALLOC_SOCKET or the default socket).
"""
import multiprocessing as mp

import numpy as np

import shmalloc

N = 1 << 20


def fill(a, i):
    a[i * N:(i + 1) * N] = i   # a is the parent's array, not a copy


def consume(q):
    while (b := q.get()) is not None:
        print("consumer: got %d bytes, owner=%s, sum %d"
              % (len(b), b.owner, np.frombuffer(b, dtype=np.int64).sum()))
        b.free()               # it is ours: give() moved it here


if __name__ == "__main__":
    with shmalloc.numpy():
        a = np.zeros(4 * N)
    with mp.Pool(4) as pool:   # each task's array goes as a handle
        pool.starmap(fill, [(a, i) for i in range(4)])
    print("pool: slices hold", [int(a[i * N]) for i in range(4)])

    q = mp.Queue()
    p = mp.Process(target=consume, args=(q,))
    p.start()
    for k in range(1, 4):
        b = shmalloc.alloc(k * 8 * N)
        np.frombuffer(b, dtype=np.int64)[:] = k
        q.put(b.give())        # ownership moves with this handle
    q.put(None)
    p.join()
