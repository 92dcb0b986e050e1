/* SPDX-License-Identifier: MIT */
/*
 * shmalloc._core's named heaps (shma_heap_create(3)): the module functions
 * that shmalloc.Heap (shmalloc/__init__.py) is written over.  A heap is
 * named here by its id, as in every process; each call takes this process's
 * handle of it with shma_heap_from_id(), a lookup in the library's table
 * (a request only the first time).  Blocks of a heap are ordinary Blocks,
 * owned by the caller of _heap_alloc(); _heap_destroy() is handed the live
 * ones the Heap made, so that none of them frees (or lends a view of)
 * memory the destroy gave back.
 */
#include "core.h"

#include <errno.h>

/* This process's handle of heap id, or NULL with shmalloc.Error set. */
static shma_heap_t *heap_of(unsigned long long id)
{
	shma_heap_t *h;
	int e;
	Py_BEGIN_ALLOW_THREADS
	errno = 0;
	h = shma_heap_from_id((uint64_t)id);
	e = errno;
	Py_END_ALLOW_THREADS
	if (h == NULL)
		raise_errno(e ? e : ENOENT);
	return h;
}

/* Creates (opts not NULL) or opens heap name: its id. */
static PyObject *heap_get(const char *name, const shma_heap_opts_t *opts)
{
	shma_heap_t *h = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = opts != NULL ? shma_heap_create(name, opts, &h) : shma_heap_open(name, &h);
	Py_END_ALLOW_THREADS
	if (rc != 0)
		return raise_errno(rc);
	return PyLong_FromUnsignedLongLong(shma_heap_id(h));
}

static PyObject *heap_create(PyObject *self, PyObject *args)
{
	(void)self;
	const char *name;
	int lifetime;
	unsigned long long max_bytes;
	if (!PyArg_ParseTuple(args, "siK", &name, &lifetime, &max_bytes))
		return NULL;
	shma_heap_opts_t opts = {(enum shma_heap_lifetime)lifetime, (size_t)max_bytes};
	return heap_get(name, &opts);
}

static PyObject *heap_open(PyObject *self, PyObject *args)
{
	(void)self;
	const char *name;
	if (!PyArg_ParseTuple(args, "s", &name))
		return NULL;
	return heap_get(name, NULL);
}

static PyObject *heap_alloc(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned long long id;
	Py_ssize_t size;
	int zero;
	if (!PyArg_ParseTuple(args, "Knp", &id, &size, &zero))
		return NULL;
	if (size < 0) {
		PyErr_SetString(PyExc_ValueError, "shmalloc.Heap.alloc: negative size");
		return NULL;
	}
	shma_heap_t *h = heap_of(id);
	return h != NULL ? alloc_block(h, size, zero) : NULL;
}

/* The handle of the heap whose id is args' one argument; NULL with an
 * exception set. */
static shma_heap_t *heap_arg(PyObject *args)
{
	unsigned long long id;
	if (!PyArg_ParseTuple(args, "K", &id))
		return NULL;
	return heap_of(id);
}

static PyObject *heap_in_use(PyObject *self, PyObject *args)
{
	(void)self;
	shma_heap_t *h = heap_arg(args);
	if (h == NULL)
		return NULL;
	size_t bytes = 0, blocks = 0;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_heap_in_use(h, &bytes, &blocks);
	Py_END_ALLOW_THREADS
	if (rc != 0)
		return raise_errno(rc);
	return Py_BuildValue("(nn)", (Py_ssize_t)bytes, (Py_ssize_t)blocks);
}

static PyObject *heap_close(PyObject *self, PyObject *args)
{
	(void)self;
	shma_heap_t *h = heap_arg(args);
	if (h == NULL)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	shma_heap_close(h);
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

/* 0, or -1 with BufferError set when a live Block of blocks (a sequence)
 * has a view exported (TypeError for what is no Block). */
static int no_views(PyObject *blocks)
{
	Py_ssize_t n = PySequence_Fast_GET_SIZE(blocks);
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *o = PySequence_Fast_GET_ITEM(blocks, i);
		if (!PyObject_TypeCheck(o, &block_type)) {
			PyErr_SetString(PyExc_TypeError, "shmalloc.Heap: not a Block");
			return -1;
		}
		const Block *b = (const Block *)o;
		if (b->ptr != NULL && b->exports > 0) {
			PyErr_Format(PyExc_BufferError,
				     "shmalloc.Heap.destroy: a block of the heap has %zd view(s) "
				     "exported", b->exports);
			return -1;
		}
	}
	return 0;
}

static PyObject *heap_destroy(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned long long id;
	PyObject *seq;
	if (!PyArg_ParseTuple(args, "KO", &id, &seq))
		return NULL;
	PyObject *blocks = PySequence_Fast(seq, "shmalloc.Heap: blocks must be a sequence");
	if (blocks == NULL)
		return NULL;
	shma_heap_t *h = no_views(blocks) == 0 ? heap_of(id) : NULL;
	int rc = -EINVAL;
	if (h != NULL) {
		Py_BEGIN_ALLOW_THREADS
		rc = shma_heap_destroy(h);
		Py_END_ALLOW_THREADS
	}
	/* Destroyed (or gone before): its Blocks here hold nothing now. */
	for (Py_ssize_t i = 0; h != NULL && (rc == 0 || rc == -ENOENT) &&
			       i < PySequence_Fast_GET_SIZE(blocks); i++) {
		Block *b = (Block *)PySequence_Fast_GET_ITEM(blocks, i);
		b->ptr = NULL;
		b->owner = 0;
		b->giving = 0;
	}
	Py_DECREF(blocks);
	if (h == NULL)
		return NULL;
	if (rc != 0)
		return raise_errno(rc);
	Py_RETURN_NONE;
}

PyMethodDef heap_methods[] = {
	{"_heap_create", heap_create, METH_VARARGS,
	 "_heap_create(name, lifetime, max_bytes) -> int\n--\n\nshma_heap_create: the new heap's id."},
	{"_heap_open", heap_open, METH_VARARGS,
	 "_heap_open(name) -> int\n--\n\nshma_heap_open: the heap's id."},
	{"_heap_alloc", heap_alloc, METH_VARARGS,
	 "_heap_alloc(id, size, zero) -> Block\n--\n\nshma_heap_malloc (or calloc): an owner Block."},
	{"_heap_in_use", heap_in_use, METH_VARARGS,
	 "_heap_in_use(id) -> (bytes, blocks)\n--\n\nshma_heap_in_use."},
	{"_heap_close", heap_close, METH_VARARGS,
	 "_heap_close(id)\n--\n\nshma_heap_close of this process's handle."},
	{"_heap_destroy", heap_destroy, METH_VARARGS,
	 "_heap_destroy(id, blocks)\n--\n\nshma_heap_destroy; the Blocks of blocks are freed\n"
	 "with it (BufferError, and nothing destroyed, if one has a view exported)."},
	{NULL, NULL, 0, NULL},
};
