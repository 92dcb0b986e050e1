# SPDX-License-Identifier: MIT
"""shmalloc.numpy(): the NEP 49 handler, and arrays as handles."""
import os
import pickle
import threading
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

import shmalloc

MIB = 1 << 20


def test_numpy_ships_nep49():
    # PyDataMem_SetHandler came with NumPy 1.22; Debian 12 has 1.24.
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    assert (major, minor) >= (1, 22)


def test_arrays_made_inside_live_in_the_heap():
    outside = np.zeros(1000)
    with shmalloc.numpy():
        a = np.zeros(1000)
        b = np.arange(10.0) * 2  # temporaries and results too
        c = np.empty((3, 4), order="F")
    after = np.zeros(1000)
    for x in (a, b, c):
        assert shmalloc.owns(x.ctypes.data)  # planted bug: handler not installed
        assert np.core.multiarray.get_handler_name(x) == "shmalloc"
    for x in (outside, after):  # planted bug: the old handler not restored
        assert not shmalloc.owns(x.ctypes.data)


def test_the_scope_is_this_threads_context():
    seen = []
    with shmalloc.numpy():
        t = threading.Thread(target=lambda: seen.append(shmalloc.owns(np.zeros(100).ctypes.data)))
        t.start()
        t.join()
    assert seen == [False]


def test_an_array_gives_its_data_back_when_it_dies():
    with shmalloc.numpy():
        a = np.ones(MIB // 4)  # 2 MiB: a large block, reused from the cache
    address = a.ctypes.data
    del a  # planted bug: the handler's free not freeing
    with shmalloc.numpy():
        b = np.empty(MIB // 4)
    assert b.ctypes.data == address


def test_realloc_keeps_the_data():
    with shmalloc.numpy():
        a = np.arange(1000.0)
        a.resize(100000, refcheck=False)
    assert shmalloc.owns(a.ctypes.data)
    assert (a[:1000] == np.arange(1000.0)).all() and not a[1000:].any()


@pytest.mark.parametrize("shape,order", [((8 * MIB,), "C"), ((1024, 1024), "F"),
                                         ((2, 3, 4), "C")])
def test_an_array_in_the_heap_pickles_to_a_handle(shape, order):
    with shmalloc.numpy():
        a = np.zeros(shape, dtype=np.float32, order=order)
    a.flat[7] = 3.5
    for h in (ForkingPickler.dumps(a), shmalloc.dumps(a)):
        assert len(h) < 200  # planted bug: the reducer not registered
        b = pickle.loads(h)
        assert b.ctypes.data == a.ctypes.data and b.shape == a.shape
        assert b.flags.f_contiguous == a.flags.f_contiguous and b.flat[7] == 3.5
        assert not b.flags.owndata and b.base.owner is False


def test_other_arrays_pickle_as_numpy_pickles_them():
    plain = np.arange(1000.0)
    with shmalloc.numpy():
        shared = np.arange(1000.0)
    strided = shared[::2]  # not contiguous: copied
    objects = np.array([None, "x"], dtype=object)
    for a in (plain, strided, objects):
        h = bytes(ForkingPickler.dumps(a))
        b = pickle.loads(h)
        assert (b == a).all() and b.ctypes.data != a.ctypes.data
    # plain pickle is left alone: it copies even a shared array
    assert len(pickle.dumps(shared, protocol=5)) > shared.nbytes


def test_a_forked_child_never_frees_its_parents_arrays():
    with shmalloc.numpy():
        a = np.ones(MIB // 4)
        a2 = np.ones(MIB // 4)
    pid = os.fork()
    if pid == 0:
        try:
            # realloc: copies (planted bug: shma_realloc frees a's block)
            a.resize(MIB, refcheck=False)
            a[:] = 5.0
            del a2  # planted bug: the free ignoring the pid frees a2's
            with shmalloc.numpy():  # block, which b then reuses
                b = np.full(MIB // 4, 7.0)
            del b
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert (a == 1.0).all() and (a2 == 1.0).all()
