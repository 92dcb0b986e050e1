/* SPDX-License-Identifier: MIT */
/*
 * shmalloc._core: libshmalloc for Python.  This file has the module
 * functions other than the roots' (roots.c) and view() (handle.c),
 * shmalloc.Error, and the module's setup; core.h says which file has what.
 */
#include "core.h"

#include <errno.h>
#include <stdlib.h>

PyObject *error_type; /* shmalloc.Error, an OSError */

PyObject *raise_errno(int rc)
{
	int e = rc < 0 ? -rc : rc;
	PyObject *args = Py_BuildValue("(is)", e, shma_strerror(e));
	if (args != NULL) {
		PyErr_SetObject(error_type, args);
		Py_DECREF(args);
	}
	return NULL;
}

PyObject *alloc_block(shma_heap_t *heap, Py_ssize_t size, int zero)
{
	void *p;
	int e;
	Py_BEGIN_ALLOW_THREADS
	errno = 0;
	if (heap != NULL)
		p = zero ? shma_heap_calloc(heap, 1, (size_t)size) : shma_heap_malloc(heap, (size_t)size);
	else
		p = zero ? shma_calloc(1, (size_t)size) : shma_malloc((size_t)size);
	e = errno;
	Py_END_ALLOW_THREADS
	if (p == NULL)
		return raise_errno(e ? e : ENOMEM);
	PyObject *b = block_new(p, size, 1);
	if (b == NULL)
		free_shared(p);
	return b;
}

PyDoc_STRVAR(alloc_doc,
"alloc(size, zero=False) -> Block\n--\n\n"
"A new block of size bytes in the shared heap (zeroed if zero), owned by\n"
"the calling process.  Connects on first use ($SHMALLOC_SOCKET, else the\n"
"default socket).  shmalloc.Error (errno ENOMEM, ...) when it cannot.");

static PyObject *core_alloc(PyObject *self, PyObject *args, PyObject *kw)
{
	(void)self;
	static char *kwlist[] = {"size", "zero", NULL};
	Py_ssize_t size;
	int zero = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "n|p", kwlist, &size, &zero))
		return NULL;
	if (size < 0) {
		PyErr_SetString(PyExc_ValueError, "shmalloc.alloc: negative size");
		return NULL;
	}
	return alloc_block(NULL, size, zero);
}

PyDoc_STRVAR(connect_doc,
"connect(socket=None)\n--\n\n"
"Connect to the daemon on socket (None: $SHMALLOC_SOCKET, else the default\n"
"socket).  Optional: the first allocation connects on its own.  Does\n"
"nothing when already connected.");

static PyObject *core_connect(PyObject *self, PyObject *args, PyObject *kw)
{
	(void)self;
	static char *kwlist[] = {"socket", NULL};
	PyObject *path = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &path))
		return NULL;
	PyObject *bytes = NULL;
	if (path != Py_None && !PyUnicode_FSConverter(path, &bytes))
		return NULL;
	const char *s = bytes ? PyBytes_AS_STRING(bytes) : NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_connect(s);
	Py_END_ALLOW_THREADS
	Py_XDECREF(bytes);
	instance_forget();
	if (rc != 0)
		return raise_errno(rc);
	Py_RETURN_NONE;
}

static PyObject *core_disconnect(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	Py_BEGIN_ALLOW_THREADS
	shma_disconnect();
	Py_END_ALLOW_THREADS
	instance_forget();
	Py_RETURN_NONE;
}

static PyObject *core_owns(PyObject *self, PyObject *arg)
{
	(void)self;
	void *p = PyLong_AsVoidPtr(arg);
	if (p == NULL && PyErr_Occurred())
		return NULL;
	return PyBool_FromLong(p != NULL && shma_ref(p) != 0);
}

static PyObject *core_ref_of(PyObject *self, PyObject *arg)
{
	(void)self;
	void *p = PyLong_AsVoidPtr(arg);
	if (p == NULL && PyErr_Occurred())
		return NULL;
	return PyLong_FromUnsignedLongLong(p ? shma_ref(p) : 0);
}

static PyObject *core_same_address(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_same_address();
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return raise_errno(rc);
	return PyBool_FromLong(rc);
}

static PyObject *core_stats_json(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	char *json = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_stats_json(&json);
	Py_END_ALLOW_THREADS
	if (rc != 0)
		return raise_errno(rc);
	PyObject *s = PyUnicode_FromString(json);
	free(json);
	return s;
}

static PyObject *core_instance(PyObject *self, PyObject *unused)
{
	(void)self, (void)unused;
	uint64_t id;
	int rc = current_instance(&id);
	if (rc != 0)
		return raise_errno(rc);
	return PyLong_FromUnsignedLongLong(id);
}


static PyObject *core_strerror(PyObject *self, PyObject *arg)
{
	(void)self;
	int e = (int)PyLong_AsLong(arg);
	if (e == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(shma_strerror(e));
}

static PyMethodDef core_methods[] = {
	{"alloc", (PyCFunction)(void (*)(void))core_alloc, METH_VARARGS | METH_KEYWORDS, alloc_doc},
	{"connect", (PyCFunction)(void (*)(void))core_connect, METH_VARARGS | METH_KEYWORDS,
	 connect_doc},
	{"disconnect", core_disconnect, METH_NOARGS,
	 "disconnect()\n--\n\nFlush this process's caches to the daemon and say goodbye;\n"
	 "blocks stay valid and mapped."},
	{"owns", core_owns, METH_O,
	 "owns(address) -> bool\n--\n\nIs this address (an int) in a block of the shared heap."},
	{"ref_of", core_ref_of, METH_O,
	 "ref_of(address) -> int\n--\n\nThe ref of the byte at address, 0 if it is not in the heap."},
	{"same_address", core_same_address, METH_NOARGS,
	 "same_address() -> bool\n--\n\nDoes this process map the heap at the instance's base."},
	{"stats_json", core_stats_json, METH_NOARGS,
	 "stats_json() -> str\n--\n\nThe daemon's stats, as shmallocctl stats --json prints them."},
	{"instance", core_instance, METH_NOARGS,
	 "instance() -> int\n--\n\nThe id of the instance this process is connected to\n"
	 "(a hash of its name), as handles carry it."},
	{"view", core_view_py, METH_VARARGS,
	 "view(instance, ref, size) -> Block\n--\n\nA borrower Block of size bytes at ref."},
	{"strerror", core_strerror, METH_O,
	 "strerror(errno) -> str\n--\n\nThe library's message for an errno (shma_strerror)."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmalloc._core",
	.m_doc = "libshmalloc's calls; import shmalloc, not this.",
	.m_size = -1,
	.m_methods = core_methods,
};

PyMODINIT_FUNC PyInit__core(void)
{
	if (PyType_Ready(&block_type) != 0)
		return NULL;
	PyObject *m = PyModule_Create(&core_module);
	if (m == NULL)
		return NULL;
	error_type = PyErr_NewExceptionWithDoc(
		"shmalloc.Error",
		"A libshmalloc error: errno and strerror (shma_strerror's text) set.",
		PyExc_OSError, NULL);
	if (error_type == NULL || PyModule_AddFunctions(m, root_methods) != 0 ||
	    PyModule_AddFunctions(m, heap_methods) != 0 ||
	    PyModule_AddObjectRef(m, "Error", error_type) != 0 ||
	    PyModule_AddObjectRef(m, "Block", (PyObject *)&block_type) != 0 ||
	    PyModule_AddObjectRef(m, "HAVE_LOOKUP_WAIT", HAVE_LOOKUP_WAIT ? Py_True : Py_False) != 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
