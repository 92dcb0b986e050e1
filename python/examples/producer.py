# SPDX-License-Identifier: MIT
"""Producer: makes a 128 MB array in the shared heap and publishes it.

Run it, then consumer.py in another terminal (both with the same
SHMALLOC_SOCKET, or the default socket).  The consumer reads the array
where it is (no copy), writes its answer into the array's last row, and
publishes the name "example-done"; this process waits for that name and
prints the answer.
"""
import numpy as np

import shmalloc

ROWS, COLS = 4096, 4096

with shmalloc.numpy():                       # the array's data in the heap
    frame = np.zeros((ROWS + 1, COLS))       # the last row: the answer
frame[:ROWS] = np.random.default_rng(0).random((ROWS, COLS))
shmalloc.publish("example-frame", frame)     # frame stays its owner
print("producer: published %d MB at ref %#x; waiting for the consumer"
      % (frame.nbytes >> 20, shmalloc.ref_of(frame.ctypes.data)))

shmalloc.lookup_wait("example-done")         # the consumer is done
print("producer: the consumer says the sum is %.3f (here: %.3f)"
      % (frame[ROWS, 0], frame[:ROWS].sum()))
shmalloc.unpublish("example-frame")
shmalloc.unpublish("example-done")
del frame                                    # the owner frees it
