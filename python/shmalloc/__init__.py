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

Named heaps: shmalloc.Heap.create(name, lifetime) is a heap of its own in the
instance (shma_heap_create(3)); its alloc() gives Blocks as above, and
destroy() frees all of them at once.  A heap of lifetime PROCESS is gone
when the process that made it exits or is killed, with every block of it.
"""
import json as _json
import weakref as _weakref
import multiprocessing.reduction as _mpr
import pickle as _pickle

from . import _core
from ._core import (Block, Error, HAVE_LOOKUP_WAIT, alloc, connect, disconnect,
                    instance, lookup, lookup_wait, owns, publish, ref_of,
                    same_address, strerror, unpublish, view)

try:
    import numpy as _np
    from . import _numpy
except ImportError:  # the core works without NumPy
    _np = None
    _numpy = None

__all__ = ["Block", "Error", "HAVE_LOOKUP_WAIT", "Heap", "LAST_USER", "PERSISTENT",
           "PROCESS", "alloc", "connect", "disconnect", "dumps", "loads", "lookup",
           "lookup_wait", "numpy", "owns", "publish", "same_address", "stats",
           "strerror", "unpublish", "Pickler"]


def stats():
    """The daemon's statistics as a dict: what `shmallocctl stats --json` says."""
    return _json.loads(_core_stats_json())


from ._core import stats_json as _core_stats_json  # noqa: E402


# ---- named heaps ------------------------------------------------------------

#: Lifetimes of a Heap (enum shma_heap_lifetime): until destroy(), across its
#: creator's exit and daemon restarts; until the creating process exits or
#: dies; until the last process that has it open closes it or dies.
PERSISTENT, PROCESS, LAST_USER = 0, 1, 2

# The Blocks alloc() made in this process, per heap id (whichever Heap
# object made them): destroy() frees them all with the heap.
_heap_blocks = {}


class Heap:
    """A named heap (shma_heap_create(3)): a pool of the shared heap with a
    lifetime of its own, whose blocks all go at once when it is destroyed.

    Made by Heap.create() or Heap.open(), never by calling Heap().  Its
    blocks are ordinary Blocks (the caller of alloc() owns each; they pickle
    and hand over as any Block).  destroy() frees every block of the heap, in
    every process: the Blocks made here of it are freed with it (it refuses,
    with BufferError, while one has a view exported); Blocks of it elsewhere
    -- borrowers, and owners in other processes -- must not be used after.
    A Heap is a context manager: leaving the with block closes it.
    """

    __slots__ = ("_id", "_name", "_closed")

    def __init__(self, *args, **kwargs):
        raise TypeError("shmalloc.Heap: use Heap.create() or Heap.open()")

    @classmethod
    def _of(cls, heap_id, name):
        h = object.__new__(cls)
        h._id, h._name, h._closed = heap_id, name, False
        return h

    @classmethod
    def create(cls, name, lifetime=PERSISTENT, max_bytes=0):
        """A new heap called name (a root's rules: at most 63 bytes) of
        lifetime PERSISTENT, PROCESS or LAST_USER, and at most max_bytes
        bytes out (0: no limit of its own; past it alloc() fails, ENOMEM).
        shmalloc.Error (EEXIST: the name is taken; EINVAL ...)."""
        return cls._of(_core._heap_create(name, lifetime, max_bytes), name)

    @classmethod
    def open(cls, name):
        """The existing heap called name (shmalloc.Error ENOENT if none)."""
        return cls._of(_core._heap_open(name), name)

    @property
    def id(self):
        """The heap's id: the same in every process, never reused."""
        return self._id

    @property
    def name(self):
        return self._name

    @property
    def closed(self):
        """True after close() or destroy()."""
        return self._closed

    def _live(self):
        if self._closed:
            raise ValueError("shmalloc.Heap %r: closed" % self._name)
        return self._id

    def alloc(self, size, zero=False):
        """A new Block of size bytes in this heap (zeroed if zero), owned by
        the caller.  shmalloc.Error ENOMEM past max_bytes or the instance's
        limits, ENOENT once the heap is destroyed."""
        b = _core._heap_alloc(self._live(), size, zero)
        _heap_blocks.setdefault(self._id, _weakref.WeakSet()).add(b)
        return b

    def in_use(self):
        """(bytes, blocks) of the heap out, in every process: objects at
        their class size and large blocks, in use or in caches."""
        return _core._heap_in_use(self._live())

    def close(self):
        """Give up this process's handle; the heap lives on (a LAST_USER
        heap ends with its last handle anywhere).  Its Blocks stay valid.
        Closing twice does nothing."""
        if not self._closed:
            self._closed = True
            _core._heap_close(self._id)

    def destroy(self):
        """Free every block of the heap at once, in every process, and close
        this handle.  BufferError (and nothing done) while a Block of it made
        in this process has a view exported."""
        _core._heap_destroy(self._live(), list(_heap_blocks.get(self._id, ())))
        self._closed = True
        _heap_blocks.pop(self._id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<shmalloc.Heap %r id=%d%s>" % (self._name, self._id,
                                              " closed" if self._closed else "")


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
