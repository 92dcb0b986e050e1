/* SPDX-License-Identifier: MIT */
/*
 * shmalloc._core's Block type.
 *
 * A Block is one allocation of the shared heap seen from Python: it exports
 * the writable buffer protocol (memoryview, bytes(), numpy.frombuffer see
 * the shared bytes themselves, no copy) and pickles to a handle of a few
 * dozen bytes (handle.c) which another process of the same instance turns
 * back into a Block of the same memory.
 *
 * Ownership.  Every allocation has at most one owner: the Block alloc()
 * returned, in the process that called it.  The owner frees the memory on
 * free() or when it is collected; any other Block of the same memory -- one
 * unpickled from a handle, one from lookup(), one inherited over fork() --
 * is a borrower and frees nothing.  Ownership moves only when asked:
 * give() makes the owner a borrower and its next pickle the one handle that
 * carries ownership, so the Block unpickled from it is the new owner.  A
 * block is never freed while a view of it is exported (BufferError), and
 * never twice (a freed Block refuses everything but repr).  The owner is
 * recorded as a pid, so a forked child, whose pid differs, holds the
 * parent's owners as borrowers: it can never free what its parent frees.
 */
#include "core.h"

#include <stdio.h>
#include <unistd.h>

int block_owns(const Block *b)
{
	return b->owner != 0 && b->owner == getpid();
}

void free_shared(void *p)
{
	Py_BEGIN_ALLOW_THREADS
	shma_free(p);
	Py_END_ALLOW_THREADS
}

/* A new Block over [ptr, ptr + size), owned by this process or not. */
PyObject *block_new(char *ptr, Py_ssize_t size, int owner)
{
	Block *b = PyObject_New(Block, &block_type);
	if (b == NULL)
		return NULL;
	b->ptr = ptr;
	b->size = size;
	b->owner = owner ? getpid() : 0;
	b->exports = 0;
	b->giving = 0;
	b->weakrefs = NULL;
	return (PyObject *)b;
}

int block_live(const Block *b)
{
	if (b->ptr != NULL)
		return 1;
	PyErr_SetString(PyExc_ValueError, "shmalloc.Block: the block was freed");
	return 0;
}

static void block_dealloc(Block *b)
{
	if (b->weakrefs != NULL)
		PyObject_ClearWeakRefs((PyObject *)b);
	/* A given block never pickled is still ours: nobody else has it. */
	if (b->ptr != NULL && (block_owns(b) || b->giving == getpid()))
		free_shared(b->ptr);
	PyObject_Free(b);
}

static int block_getbuffer(Block *b, Py_buffer *view, int flags)
{
	if (b->ptr == NULL) {
		PyErr_SetString(PyExc_BufferError, "shmalloc.Block: the block was freed");
		view->obj = NULL;
		return -1;
	}
	if (PyBuffer_FillInfo(view, (PyObject *)b, b->ptr, b->size, 0, flags) != 0)
		return -1;
	b->exports++;
	return 0;
}

static void block_releasebuffer(Block *b, Py_buffer *view)
{
	(void)view;
	b->exports--;
}

static PyBufferProcs block_as_buffer = {
	.bf_getbuffer = (getbufferproc)block_getbuffer,
	.bf_releasebuffer = (releasebufferproc)block_releasebuffer,
};

static Py_ssize_t block_len(Block *b)
{
	if (!block_live(b))
		return -1;
	return b->size;
}

static PySequenceMethods block_as_sequence = {
	.sq_length = (lenfunc)block_len,
};

PyDoc_STRVAR(block_free_doc,
"free()\n--\n\n"
"Give the memory back to the heap now.  Only the owner may (ValueError\n"
"otherwise: a borrower, a block already freed or given away); never while\n"
"a view of it is exported (BufferError: release the memoryview or drop the\n"
"arrays first).  After it, the Block refuses every use.");

static PyObject *block_free(Block *b, PyObject *unused)
{
	(void)unused;
	if (!block_live(b))
		return NULL;
	if (!block_owns(b)) {
		PyErr_SetString(PyExc_ValueError,
				b->giving ? "shmalloc.Block: given away with give(); its new owner frees it"
					  : "shmalloc.Block: not the owner (a borrower frees nothing)");
		return NULL;
	}
	if (b->exports > 0) {
		PyErr_Format(PyExc_BufferError,
			     "shmalloc.Block: %zd view(s) of the block still exported", b->exports);
		return NULL;
	}
	char *p = b->ptr;
	b->ptr = NULL;
	b->owner = 0;
	free_shared(p);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(block_give_doc,
"give() -> Block\n--\n\n"
"Move ownership out of this process with the next pickle of this Block:\n"
"this Block becomes a borrower at once, the first handle pickled from it\n"
"after this call carries ownership, and the Block unpickled from that\n"
"handle is the owner (it frees the memory).  Load that one handle once.\n"
"Should this Block be collected before it is ever pickled, it frees the\n"
"memory itself.  Returns self, so `queue.put(block.give())` reads well.");

static PyObject *block_give(Block *b, PyObject *unused)
{
	(void)unused;
	if (!block_live(b))
		return NULL;
	if (!block_owns(b)) {
		PyErr_SetString(PyExc_ValueError, "shmalloc.Block: not the owner, nothing to give");
		return NULL;
	}
	b->owner = 0;
	b->giving = getpid();
	Py_INCREF(b);
	return (PyObject *)b;
}

static PyObject *block_get_ref(Block *b, void *unused)
{
	(void)unused;
	if (!block_live(b))
		return NULL;
	return PyLong_FromUnsignedLongLong(shma_ref(b->ptr));
}

static PyObject *block_get_address(Block *b, void *unused)
{
	(void)unused;
	if (!block_live(b))
		return NULL;
	return PyLong_FromVoidPtr(b->ptr);
}

static PyObject *block_get_owner(Block *b, void *unused)
{
	(void)unused;
	return PyBool_FromLong(b->ptr != NULL && block_owns(b));
}

static PyObject *block_get_freed(Block *b, void *unused)
{
	(void)unused;
	return PyBool_FromLong(b->ptr == NULL);
}

static PyObject *block_repr(Block *b)
{
	if (b->ptr == NULL)
		return PyUnicode_FromString("<shmalloc.Block freed>");
	char ref[24];
	snprintf(ref, sizeof ref, "%llx", (unsigned long long)shma_ref(b->ptr));
	return PyUnicode_FromFormat("<shmalloc.Block ref=0x%s size=%zd %s>", ref, b->size,
				    block_owns(b) ? "owner" : "borrower");
}

static PyMethodDef block_methods[] = {
	{"free", (PyCFunction)block_free, METH_NOARGS, block_free_doc},
	{"give", (PyCFunction)block_give, METH_NOARGS, block_give_doc},
	{"__reduce__", (PyCFunction)block_reduce, METH_NOARGS,
	 "The handle: (instance id, ref, size, carries ownership)."},
	{"_rebuild", (PyCFunction)block_rebuild, METH_VARARGS | METH_CLASS,
	 "The Block of a handle (what unpickling calls)."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef block_getset[] = {
	{"ref", (getter)block_get_ref, NULL, "The block's ref (int): valid in every process.", NULL},
	{"address", (getter)block_get_address, NULL,
	 "The block's address in this process (int).", NULL},
	{"owner", (getter)block_get_owner, NULL,
	 "True when this Block frees the memory (on free() or when collected).", NULL},
	{"freed", (getter)block_get_freed, NULL, "True once free() ran.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(block_doc,
"A block of the shared heap: a writable buffer of len(block) bytes.\n\n"
"memoryview(b), bytes(b), numpy.frombuffer(b) and numpy.ndarray(buffer=b)\n"
"see the shared memory itself.  Pickled (any protocol: pickle, multiprocessing\n"
"queues, pipes and pools), a Block is a handle of about 100 bytes which\n"
"another process of the same instance unpickles to the same memory.\n"
"Made by shmalloc.alloc() (an owner), by unpickling or lookup() (a borrower).");

PyTypeObject block_type = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmalloc.Block",
	.tp_basicsize = sizeof(Block),
	.tp_dealloc = (destructor)block_dealloc,
	.tp_repr = (reprfunc)block_repr,
	.tp_as_sequence = &block_as_sequence,
	.tp_as_buffer = &block_as_buffer,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = block_doc,
	.tp_weaklistoffset = offsetof(Block, weakrefs),
	.tp_methods = block_methods,
	.tp_getset = block_getset,
};
