# SPDX-License-Identifier: MIT
"""Consumer: finds the producer's array, computes on it in place, answers.

See producer.py.  What this process holds is a borrower Block: the same
memory as the producer's array; it frees nothing, the producer does.
"""
import numpy as np

import shmalloc

ROWS, COLS = 4096, 4096

block = shmalloc.lookup_wait("example-frame", timeout=60)
frame = np.frombuffer(block, dtype=np.float64, count=(ROWS + 1) * COLS).reshape(ROWS + 1, COLS)
frame[ROWS, 0] = frame[:ROWS].sum()          # the answer, written in place
print("consumer: summed %d MB without a copy" % (ROWS * COLS * 8 >> 20))
shmalloc.publish("example-done", block)      # a root naming the same block
