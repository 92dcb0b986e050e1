/* SPDX-License-Identifier: MIT */
/*
 * shmalloc._core's handles: a Block pickles to (instance id, ref, size,
 * carries ownership), about 100 bytes whatever its size, and a handle is
 * turned back into a Block only in a process of the same instance whose
 * heap has the whole block.
 */
#include "core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A handle names its instance by a 64-bit FNV-1a hash of the instance's
 * name (the name itself may be 47 bytes: the hash keeps every handle the
 * same small size).  The name comes from the daemon's stats, once per
 * connection: cached here, forgotten by connect() and disconnect(). */
static uint64_t instance_id;
static int instance_known;

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* The "instance" string of a stats document: its first member. */
static int instance_of_json(const char *json, uint64_t *id)
{
	static const char key[] = "{\"instance\":\"";
	if (strncmp(json, key, sizeof key - 1) != 0)
		return -EPROTO;
	const char *s = json + sizeof key - 1;
	const char *end = strchr(s, '"');
	if (end == NULL)
		return -EPROTO;
	*id = fnv1a(s, (size_t)(end - s));
	return 0;
}

int current_instance(uint64_t *id)
{
	if (instance_known) {
		*id = instance_id;
		return 0;
	}
	char *json = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shma_stats_json(&json);
	Py_END_ALLOW_THREADS
	if (rc == 0) {
		rc = instance_of_json(json, &instance_id);
		free(json);
	}
	if (rc != 0)
		return rc;
	instance_known = 1;
	*id = instance_id;
	return 0;
}

void instance_forget(void)
{
	instance_known = 0;
}

/* ---- pickling --------------------------------------------------------- */

/* The handle: (instance id, ref, size, carries ownership). */
PyObject *block_reduce(Block *b, PyObject *args)
{
	(void)args;
	if (!block_live(b))
		return NULL;
	uint64_t id;
	int rc = current_instance(&id);
	if (rc != 0)
		return raise_errno(rc);
	shma_ref_t ref = shma_ref(b->ptr);
	if (ref == 0)
		return raise_errno(EINVAL);
	int moves = b->giving == getpid();
	if (moves)
		b->giving = 0; /* the one handle that moves it */
	PyObject *rebuild = PyObject_GetAttrString((PyObject *)Py_TYPE(b), "_rebuild");
	if (rebuild == NULL)
		return NULL;
	return Py_BuildValue("(N(KKnO))", rebuild, (unsigned long long)id,
			     (unsigned long long)ref, b->size, moves ? Py_True : Py_False);
}

/* Block._rebuild(instance, ref, size, owner): the Block of a handle. */
PyObject *block_rebuild(PyObject *cls, PyObject *args)
{
	(void)cls;
	unsigned long long id, ref;
	Py_ssize_t size;
	int owner;
	if (!PyArg_ParseTuple(args, "KKnp", &id, &ref, &size, &owner))
		return NULL;
	return core_view(id, ref, size, owner);
}

PyObject *core_view(uint64_t id, uint64_t ref, Py_ssize_t size, int owner)
{
	uint64_t mine;
	int rc = current_instance(&mine);
	if (rc != 0)
		return raise_errno(rc);
	if (id != mine) {
		PyErr_SetString(PyExc_ValueError,
				"shmalloc: the handle is of another shmalloc instance");
		return NULL;
	}
	if (size < 0 || ref == 0) {
		PyErr_SetString(PyExc_ValueError, "shmalloc: not a valid handle");
		return NULL;
	}
	/* Both ends in the heap, the same distance apart as here. */
	char *p = shma_ptr(ref);
	char *last = size > 0 ? shma_ptr(ref + (uint64_t)size - 1) : p;
	if (p == NULL || last == NULL || last - p != (size > 0 ? size - 1 : 0)) {
		PyErr_SetString(PyExc_ValueError,
				"shmalloc: the handle's block is not in this process's heap");
		return NULL;
	}
	return block_new(p, size, owner);
}
PyObject *core_view_py(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned long long id, ref;
	Py_ssize_t size;
	if (!PyArg_ParseTuple(args, "KKn", &id, &ref, &size))
		return NULL;
	return core_view(id, ref, size, 0);
}
