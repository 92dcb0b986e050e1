/* SPDX-License-Identifier: MIT */
/*
 * shmalloc._numpy: a NumPy allocation handler (NEP 49) over libshmalloc.
 *
 * Installed with PyDataMem_SetHandler (shmalloc.numpy() does it for the
 * scope of a with block, in the current thread's context only), it makes
 * the data of every array created there a block of the shared heap.  NumPy
 * keeps in each array the handler its data came from and gives the data
 * back to that handler, so an array made in the scope is freed through
 * shma_free whenever it dies, in or out of the scope.
 *
 * Fork: a child inherits its parent's arrays, whose data the parent frees.
 * Each handler records the process it was made in; one inherited over
 * fork() frees nothing (and its realloc copies instead of moving), and the
 * child makes a handler of its own for what it allocates.
 *
 * The GIL, when the calling thread holds it, is released around each call
 * into the library (an allocation may wait for the daemon).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#include <numpy/arrayobject.h>

#include <shmalloc.h>

#include <string.h>
#include <unistd.h>

typedef struct {
	PyDataMem_Handler handler; /* first: the capsule's pointer is both */
	pid_t pid;                 /* the process whose blocks it frees */
} shared_handler;

#define WITHOUT_GIL(stmt)                                                      \
	do {                                                                   \
		if (PyGILState_Check()) {                                      \
			Py_BEGIN_ALLOW_THREADS stmt;                           \
			Py_END_ALLOW_THREADS                                   \
		} else {                                                       \
			stmt;                                                  \
		}                                                              \
	} while (0)

static int inherited(void *ctx)
{
	return ((shared_handler *)ctx)->pid != getpid();
}

static void *h_malloc(void *ctx, size_t size)
{
	(void)ctx;
	void *p;
	WITHOUT_GIL(p = shma_malloc(size));
	return p;
}

static void *h_calloc(void *ctx, size_t n, size_t size)
{
	(void)ctx;
	void *p;
	WITHOUT_GIL(p = shma_calloc(n, size));
	return p;
}

static void *h_realloc(void *ctx, void *old, size_t size)
{
	void *p;
	if (old == NULL || !inherited(ctx)) {
		WITHOUT_GIL(p = shma_realloc(old, size));
		return p;
	}
	/* The parent's block: copy it, leave it to the parent. */
	WITHOUT_GIL(p = shma_malloc(size));
	if (p != NULL) {
		size_t had = shma_usable_size(old);
		memcpy(p, old, had < size ? had : size);
	}
	return p;
}

static void h_free(void *ctx, void *p, size_t size)
{
	(void)size;
	if (p == NULL || inherited(ctx))
		return;
	WITHOUT_GIL(shma_free(p));
}

static void handler_destroy(PyObject *capsule)
{
	PyMem_RawFree(PyCapsule_GetPointer(capsule, "mem_handler"));
}

/* This process's handler: made on first use, again in a forked child. */
static PyObject *current;

static PyObject *handler_get(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	if (current != NULL && !inherited(PyCapsule_GetContext(current))) {
		Py_INCREF(current);
		return current;
	}
	shared_handler *h = PyMem_RawCalloc(1, sizeof *h);
	if (h == NULL)
		return PyErr_NoMemory();
	strcpy(h->handler.name, "shmalloc");
	h->handler.version = 1;
	h->handler.allocator = (PyDataMemAllocator){
		.ctx = h, .malloc = h_malloc, .calloc = h_calloc,
		.realloc = h_realloc, .free = h_free,
	};
	h->pid = getpid();
	PyObject *capsule = PyCapsule_New(h, "mem_handler", handler_destroy);
	if (capsule == NULL) {
		PyMem_RawFree(h);
		return NULL;
	}
	if (PyCapsule_SetContext(capsule, h) != 0) {
		Py_DECREF(capsule);
		return NULL;
	}
	/* An inherited one stays alive while its arrays do (they hold it). */
	Py_XDECREF(current);
	current = capsule;
	Py_INCREF(current);
	return current;
}

static PyObject *handler_set(PyObject *self, PyObject *arg)
{
	(void)self;
	if (arg != Py_None && !PyCapsule_IsValid(arg, "mem_handler")) {
		PyErr_SetString(PyExc_TypeError, "set_handler: a mem_handler capsule or None");
		return NULL;
	}
	return PyDataMem_SetHandler(arg == Py_None ? NULL : arg);
}

static PyObject *data_address(PyObject *self, PyObject *arg)
{
	(void)self;
	if (!PyArray_Check(arg)) {
		PyErr_SetString(PyExc_TypeError, "data_address: a numpy.ndarray");
		return NULL;
	}
	return PyLong_FromVoidPtr(PyArray_DATA((PyArrayObject *)arg));
}

static PyMethodDef numpy_methods[] = {
	{"handler", handler_get, METH_NOARGS,
	 "handler() -> capsule\n--\n\nThis process's NEP 49 handler over the shared heap."},
	{"set_handler", handler_set, METH_O,
	 "set_handler(capsule or None) -> capsule\n--\n\n"
	 "PyDataMem_SetHandler: install a handler in the current context (None:\n"
	 "NumPy's default); returns the one it replaces."},
	{"data_address", data_address, METH_O,
	 "data_address(array) -> int\n--\n\nThe address of an array's data."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef numpy_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmalloc._numpy",
	.m_doc = "The NEP 49 allocation handler; use shmalloc.numpy().",
	.m_size = -1,
	.m_methods = numpy_methods,
};

PyMODINIT_FUNC PyInit__numpy(void)
{
	import_array();
	return PyModule_Create(&numpy_module);
}
