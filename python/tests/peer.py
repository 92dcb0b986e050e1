# SPDX-License-Identifier: MIT
"""One of the two separately started processes of test_processes.py.

  peer.py a NAME   makes a 64 MiB array under shmalloc.numpy(), sets its
                   first half to 1.0, publishes it as NAME, says
                   "published REF"; on a line from stdin checks that the
                   second half is 2.0 (the other process's write), says "ok".
  peer.py b NAME   waits for NAME, checks the first half is 1.0 (the first
                   process's write), sets the second half to 2.0, says
                   "written REF".
"""
import sys

import numpy as np

import shmalloc

N = (64 << 20) // 8
role, name = sys.argv[1], sys.argv[2]
if role == "a":
    with shmalloc.numpy():
        a = np.zeros(N)
    a[:N // 2] = 1.0
    shmalloc.publish(name, a)
    print("published", shmalloc.ref_of(a.ctypes.data), flush=True)
    sys.stdin.readline()
    ok = (a[N // 2:] == 2.0).all() and (a[:N // 2] == 1.0).all()
    shmalloc.unpublish(name)
    print("ok" if ok else "second half not seen", flush=True)
else:
    b = shmalloc.lookup_wait(name, timeout=60)
    a = np.frombuffer(b, dtype=np.float64, count=N)
    if not (a[:N // 2] == 1.0).all() or a[N // 2:].any():
        print("first half not seen", flush=True)
        sys.exit(1)
    a[N // 2:] = 2.0
    print("written", b.ref, flush=True)
