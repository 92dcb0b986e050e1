/* SPDX-License-Identifier: MIT */
/*
 * shmalloc._core's private header: what its files share.
 *
 *   block.c   the Block type: buffer protocol, ownership (free, give),
 *             attributes, repr
 *   handle.c  the instance's id, pickling a Block to a handle and back,
 *             view()
 *   roots.c   publish, lookup, lookup_wait, unpublish
 *   heap.c    named heaps, by id (shmalloc.Heap is written over them)
 *   core.c    the other module functions (alloc, connect, stats, ...),
 *             shmalloc.Error and the module's setup
 *
 * The GIL is released around every call that may wait for the daemon (an
 * allocation or free may refill or flush a cache; connect, roots and stats
 * always ask it).  The names below are not static, but the module is built
 * with -fvisibility=hidden: only PyInit__core leaves the shared object.
 */
#ifndef SHMALLOC_PY_CORE_H
#define SHMALLOC_PY_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shmalloc.h>

#include <stdint.h>
#include <sys/types.h>

typedef struct {
	PyObject_HEAD
	char *ptr;           /* NULL once freed */
	Py_ssize_t size;
	pid_t owner;         /* the owning process, 0 for a borrower */
	Py_ssize_t exports;  /* buffer views now exported */
	pid_t giving;        /* give() was called here: the next pickle moves it */
	PyObject *weakrefs;
} Block;

/* core.c */
extern PyObject *error_type; /* shmalloc.Error, an OSError */
/* Raises shmalloc.Error(errno, shma_strerror(errno)); rc is -errno or errno. */
PyObject *raise_errno(int rc);
/* A new owner Block of size bytes (zeroed if zero) in heap (NULL: the
 * default heap), taken without the GIL; NULL with shmalloc.Error set. */
PyObject *alloc_block(shma_heap_t *heap, Py_ssize_t size, int zero);

/* block.c */
extern PyTypeObject block_type;
/* A new Block over [ptr, ptr + size), owned by this process or not. */
PyObject *block_new(char *ptr, Py_ssize_t size, int owner);
/* 1, or 0 with ValueError set when the block was freed. */
int block_live(const Block *b);
int block_owns(const Block *b);
/* shma_free(p) without the GIL. */
void free_shared(void *p);

/* handle.c */
/* The instance's id: 0 with *id set, or -errno (Python exception not set). */
int current_instance(uint64_t *id);
/* A new connection may be to another instance: read the id again. */
void instance_forget(void);
/* The Block of a handle's fields (its checks failed: NULL, exception set). */
PyObject *core_view(uint64_t id, uint64_t ref, Py_ssize_t size, int owner);
/* Block.__reduce__ and Block._rebuild. */
PyObject *block_reduce(Block *b, PyObject *args);
PyObject *block_rebuild(PyObject *cls, PyObject *args);
/* view(instance, ref, size), a module function. */
PyObject *core_view_py(PyObject *self, PyObject *args);

/* roots.c: the module functions of roots, added to the module at setup. */
extern PyMethodDef root_methods[];
/* heap.c: the module functions of named heaps, added the same way. */
extern PyMethodDef heap_methods[];

#endif
