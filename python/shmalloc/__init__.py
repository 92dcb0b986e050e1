# SPDX-License-Identifier: MIT
"""shmalloc: NumPy arrays and buffers shared between processes without a copy.

One heap, mapped by every process of a shmalloc instance (a running
shmallocd); a block allocated in one process is the same memory in every
other.  From Python::

    import shmalloc, numpy as np
    b = shmalloc.alloc(1 << 20)           # a Block: a writable buffer
    a = np.frombuffer(b, dtype=np.uint8)  # a view of the shared bytes
    with shmalloc.numpy():                # arrays made here live in the heap
        m = np.zeros((1024, 1024))

A Block, and an array whose data is in the heap, pickles to a small handle
(multiprocessing queues, pipes and pools do it for you; for plain pickle
use shmalloc.dumps), and the process that unpickles it sees the same memory.

Ownership, the one rule: each allocation has one owner, which frees it.
shmalloc.alloc() makes the caller's Block the owner (it frees on free() or
when collected); an array made under shmalloc.numpy() is its own owner, as
any NumPy array is.  Every other view -- a Block or array unpickled from a
handle, a lookup() -- is a borrower: it frees nothing, and must not be used
after the owner has freed the memory.  Handing over lends: the owner stays
where it was.  To move ownership with a Block, call give() before pickling
it (the one handle pickled next carries it, and the Block unpickled from it
is the new owner).  Nothing is ever freed twice, nor while a view of it is
exported (BufferError); a forked child holds its parent's owners as
borrowers.
"""
import json as _json
import multiprocessing.reduction as _mpr
import pickle as _pickle

from ._core import (Block, Error, HAVE_LOOKUP_WAIT, alloc, connect, disconnect,
                    instance, lookup, lookup_wait, owns, publish, ref_of,
                    same_address, strerror, unpublish, view)

try:
    import numpy as _np
    from . import _numpy
except ImportError:  # the core works without NumPy
    _np = None
    _numpy = None

__all__ = ["Block", "Error", "HAVE_LOOKUP_WAIT", "alloc", "connect", "disconnect",
           "dumps", "loads", "lookup", "lookup_wait", "numpy", "owns", "publish",
           "same_address", "stats", "strerror", "unpublish", "Pickler"]


def stats():
    """The daemon's statistics as a dict: what `shmallocctl stats --json` says."""
    return _json.loads(_core_stats_json())


from ._core import stats_json as _core_stats_json  # noqa: E402


class _NumpyScope:
    """Context manager of shmalloc.numpy(): see its docstring."""

    __slots__ = ("_old",)

    def __enter__(self):
        self._old = _numpy.set_handler(_numpy.handler())
        return self

    def __exit__(self, *exc):
        _numpy.set_handler(self._old)
        self._old = None
        return False


def numpy():
    """A context manager: NumPy arrays created inside keep their data in the
    shared heap (a NEP 49 allocation handler, PyDataMem_SetHandler).

    The scope is the current thread's context (other threads allocate as
    before); an array made in it is freed through the heap whenever it dies,
    in or out of the scope.  Such arrays hand over as cheaply as a Block
    (multiprocessing, shmalloc.dumps): the receiver gets a view of the same
    memory, the sender's array stays the owner.
    """
    if _numpy is None:
        raise ImportError("shmalloc.numpy(): the module was built without NumPy")
    return _NumpyScope()


# ---- arrays in the heap hand over as handles -----------------------------

def _array_handle(a):
    """The handle of an array whose data is a contiguous run of the heap,
    else None."""
    if a.dtype.hasobject or not (a.flags.c_contiguous or a.flags.f_contiguous):
        return None
    nbytes = a.nbytes
    if nbytes == 0:
        return None
    ref = ref_of(_numpy.data_address(a))
    if ref == 0:
        return None
    dt = a.dtype
    dtype = dt.str if dt.names is None and dt.subdtype is None else dt
    order = "C" if a.flags.c_contiguous else "F"
    return _rebuild_array, (instance(), ref, nbytes, dtype, a.shape, order)


def _rebuild_array(inst, ref, nbytes, dtype, shape, order):
    return _np.ndarray(shape, dtype, buffer=view(inst, ref, nbytes), order=order)


def _reduce_array(a):
    # What multiprocessing would do otherwise (its protocol is below 5).
    return _array_handle(a) or a.__reduce__()


if _np is not None:
    _mpr.ForkingPickler.register(_np.ndarray, _reduce_array)


class Pickler(_pickle.Pickler):
    """A pickle.Pickler that writes arrays whose data is in the shared heap
    as handles (plain pickle copies them, as NumPy always does)."""

    def reducer_override(self, obj):
        if _np is not None and type(obj) is _np.ndarray:
            return _array_handle(obj) or NotImplemented
        return NotImplemented


def dumps(obj, protocol=_pickle.HIGHEST_PROTOCOL):
    """pickle.dumps with Pickler: arrays in the heap go as handles."""
    import io
    f = io.BytesIO()
    Pickler(f, protocol).dump(obj)
    return f.getvalue()


loads = _pickle.loads
