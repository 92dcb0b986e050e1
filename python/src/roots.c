/* SPDX-License-Identifier: MIT */
/*
 * shmalloc._core's roots: publish, lookup, lookup_wait, unpublish (the
 * daemon's directory of name -> ref).
 */
#include "core.h"

#include <errno.h>
#include <time.h>

/* The ref of what obj's buffer starts at, which must be a block's start. */
static int start_ref(PyObject *obj, shma_ref_t *ref)
{
	Py_buffer view;
	if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) != 0)
		return -1;
	*ref = shma_ref(view.buf);
	int start = *ref != 0 && shma_usable_size(view.buf) > 0;
	PyBuffer_Release(&view);
	if (!start) {
		PyErr_SetString(PyExc_ValueError,
				"shmalloc.publish: the object's buffer is not a block of the shared heap");
		return -1;
	}
	return 0;
}

PyDoc_STRVAR(publish_doc,
"publish(name, obj)\n--\n\n"
"Publish the block obj (a Block, or any buffer that starts at a block of the\n"
"heap, as an array made under shmalloc.numpy() does) under name: a root\n"
"other processes find with lookup().  Ownership does not move.\n"
"shmalloc.Error EEXIST when the name is taken, EINVAL, ENAMETOOLONG.");

static PyObject *core_publish(PyObject *self, PyObject *args)
{
	(void)self;
	const char *name;
	PyObject *obj;
	shma_ref_t ref;
	if (!PyArg_ParseTuple(args, "sO", &name, &obj) || start_ref(obj, &ref) != 0)
		return NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_publish(name, ref);
	Py_END_ALLOW_THREADS
	if (rc != 0)
		return raise_errno(rc);
	Py_RETURN_NONE;
}

/* The borrower Block of a root's ref: the whole usable block. */
static PyObject *root_block(shma_ref_t ref)
{
	char *p = shma_ptr(ref);
	size_t n = p ? shma_usable_size(p) : 0;
	if (n == 0) {
		PyErr_SetString(PyExc_ValueError, "shmalloc.lookup: the root names no block");
		return NULL;
	}
	return block_new(p, (Py_ssize_t)n, 0);
}

PyDoc_STRVAR(lookup_doc,
"lookup(name) -> Block\n--\n\n"
"The block published under name, as a borrower Block of its usable size\n"
"(at least what was allocated).  shmalloc.Error ENOENT when no such name.");

static PyObject *core_lookup(PyObject *self, PyObject *args)
{
	(void)self;
	const char *name;
	if (!PyArg_ParseTuple(args, "s", &name))
		return NULL;
	shma_ref_t ref = 0;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_lookup(name, &ref);
	Py_END_ALLOW_THREADS
	if (rc != 0)
		return raise_errno(rc);
	return root_block(ref);
}

/* lookup_wait: the library's shma_lookup_wait where configure-style
 * probing found it (setup.py sets HAVE_LOOKUP_WAIT), else lookup() polled.
 * Either way the wait is cut in slices, so that Ctrl-C is seen between
 * two of them. */
#define WAIT_SLICE_MS 200
#define POLL_MAX_MS 50

static long long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

#if HAVE_LOOKUP_WAIT
/* One wait of at most ms: 0 (found), -ETIMEDOUT (not yet), other -errno. */
static int wait_slice(const char *name, shma_ref_t *ref, int ms, int *step)
{
	(void)step;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_lookup_wait(name, ref, ms);
	Py_END_ALLOW_THREADS
	return rc;
}
#else
static int wait_slice(const char *name, shma_ref_t *ref, int ms, int *step)
{
	int rc;
	int nap = *step < ms ? *step : ms;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_lookup(name, ref);
	if (rc == -ENOENT) {
		struct timespec ts = {nap / 1000, (nap % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		rc = -ETIMEDOUT;
	}
	Py_END_ALLOW_THREADS
	*step = *step * 2 > POLL_MAX_MS ? POLL_MAX_MS : *step * 2;
	return rc;
}
#endif

/* 0 with *ref set, -errno, or 1 when a signal handler raised. */
static int lookup_wait_loop(const char *name, shma_ref_t *ref, long long timeout_ms)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int step = 1;
	for (;;) {
		long long left = deadline < 0 ? WAIT_SLICE_MS : deadline - now_ms();
		if (left < 0)
			left = 0;
		int rc = wait_slice(name, ref, (int)(left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS),
				    &step);
		if (rc != -ETIMEDOUT)
			return rc;
		if (deadline >= 0 && now_ms() >= deadline)
			return -ETIMEDOUT;
		if (PyErr_CheckSignals() != 0)
			return 1;
	}
}

PyDoc_STRVAR(lookup_wait_doc,
"lookup_wait(name, timeout=None) -> Block\n--\n\n"
"As lookup(), waiting until the name is published: timeout in seconds,\n"
"None for ever.  shmalloc.Error ETIMEDOUT when it is not in time.  Ctrl-C\n"
"interrupts it.  shmalloc.HAVE_LOOKUP_WAIT says how it waits: True, the\n"
"library's shma_lookup_wait (the daemon answers when the name appears);\n"
"False, a library without it: lookup() polled, 1 ms apart at first, then\n"
"doubling to 50 ms.");

static PyObject *core_lookup_wait(PyObject *self, PyObject *args, PyObject *kw)
{
	(void)self;
	static char *kwlist[] = {"name", "timeout", NULL};
	const char *name;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O", kwlist, &name, &timeout))
		return NULL;
	long long left_ms = -1;
	if (timeout != Py_None) {
		double t = PyFloat_AsDouble(timeout);
		if (t == -1.0 && PyErr_Occurred())
			return NULL;
		left_ms = t <= 0 ? 0 : (long long)(t * 1000.0 + 0.5);
	}
	shma_ref_t ref = 0;
	int rc = lookup_wait_loop(name, &ref, left_ms);
	if (rc == 1)
		return NULL; /* a signal's exception */
	if (rc != 0)
		return raise_errno(rc);
	return root_block(ref);
}

PyDoc_STRVAR(unpublish_doc,
"unpublish(name)\n--\n\nRemove the root name (the block stays).  shmalloc.Error ENOENT.");

static PyObject *core_unpublish(PyObject *self, PyObject *args)
{
	(void)self;
	const char *name;
	if (!PyArg_ParseTuple(args, "s", &name))
		return NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_unpublish(name);
	Py_END_ALLOW_THREADS
	if (rc != 0)
		return raise_errno(rc);
	Py_RETURN_NONE;
}

PyMethodDef root_methods[] = {
	{"publish", core_publish, METH_VARARGS, publish_doc},
	{"lookup", core_lookup, METH_VARARGS, lookup_doc},
	{"lookup_wait", (PyCFunction)(void (*)(void))core_lookup_wait,
	 METH_VARARGS | METH_KEYWORDS, lookup_wait_doc},
	{"unpublish", core_unpublish, METH_VARARGS, unpublish_doc},
	{NULL, NULL, 0, NULL},
};
