# SPDX-License-Identifier: MIT
"""The process test_heaps.py kills.

  heap_peer.py NAME   creates the heap NAME of lifetime PROCESS, fills it
                      with SMALL blocks of 100 B, MEDIUM of 64 KiB and LARGE
                      of 1 MiB (each written to), says "ready BYTES BLOCKS"
                      (the heap's in_use()), and waits on stdin for ever --
                      until it is killed.
"""
import sys

import shmalloc

SMALL, MEDIUM, LARGE = 3000, 40, 3
h = shmalloc.Heap.create(sys.argv[1], shmalloc.PROCESS)
held = []
for n, size in ((SMALL, 100), (MEDIUM, 64 << 10), (LARGE, 1 << 20)):
    for _ in range(n):
        b = h.alloc(size)
        memoryview(b)[0] = 0x5a
        held.append(b)
bytes_, blocks = h.in_use()
print("ready", bytes_, blocks, flush=True)
sys.stdin.read()
