/*
 * shmalloc._core: libshmalloc for Python.
 *
 * A Block is one allocation of the shared heap seen from Python: it exports
 * the writable buffer protocol (memoryview, bytes(), numpy.frombuffer see
 * the shared bytes themselves, no copy) and pickles to a handle of a few
 * dozen bytes -- the instance's id, the block's ref and its size -- which
 * another process of the same instance turns back into a Block of the same
 * memory.
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
 *
 * The GIL is released around every call that may wait for the daemon (an
 * allocation or free may refill or flush a cache; connect, roots and stats
 * always ask it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <shmalloc.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static PyObject *error_type; /* shmalloc.Error, an OSError */

/* Raises shmalloc.Error(errno, shma_strerror(errno)); rc is -errno or errno. */
static PyObject *raise_errno(int rc)
{
	int e = rc < 0 ? -rc : rc;
	PyObject *args = Py_BuildValue("(is)", e, shma_strerror(e));
	if (args != NULL) {
		PyErr_SetObject(error_type, args);
		Py_DECREF(args);
	}
	return NULL;
}

/* ---- the instance's id, for handles ---------------------------------- */

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

/* 0 with *id set, or -errno (Python exception not set). */
static int current_instance(uint64_t *id)
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

/* ---- Block ------------------------------------------------------------ */

typedef struct {
	PyObject_HEAD
	char *ptr;           /* NULL once freed */
	Py_ssize_t size;
	pid_t owner;         /* the owning process, 0 for a borrower */
	Py_ssize_t exports;  /* buffer views now exported */
	pid_t giving;        /* give() was called here: the next pickle moves it */
	PyObject *weakrefs;
} Block;

static PyTypeObject block_type;

static int block_owns(const Block *b)
{
	return b->owner != 0 && b->owner == getpid();
}

static void free_shared(void *p)
{
	Py_BEGIN_ALLOW_THREADS
	shma_free(p);
	Py_END_ALLOW_THREADS
}

/* A new Block over [ptr, ptr + size), owned by this process or not. */
static PyObject *block_new(char *ptr, Py_ssize_t size, int owner)
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

static int block_live(const Block *b)
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

/* The handle: (instance id, ref, size, carries ownership). */
static PyObject *block_reduce(Block *b, PyObject *args)
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

static PyObject *core_view(uint64_t id, uint64_t ref, Py_ssize_t size, int owner);

/* Block._rebuild(instance, ref, size, owner): the Block of a handle. */
static PyObject *block_rebuild(PyObject *cls, PyObject *args)
{
	(void)cls;
	unsigned long long id, ref;
	Py_ssize_t size;
	int owner;
	if (!PyArg_ParseTuple(args, "KKnp", &id, &ref, &size, &owner))
		return NULL;
	return core_view(id, ref, size, owner);
}

static PyObject *core_view(uint64_t id, uint64_t ref, Py_ssize_t size, int owner)
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

static PyTypeObject block_type = {
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

/* ---- module functions ------------------------------------------------- */

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
	void *p;
	int e;
	Py_BEGIN_ALLOW_THREADS
	errno = 0;
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
	instance_known = 0;
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
	instance_known = 0;
	Py_RETURN_NONE;
}

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

static PyObject *core_view_py(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned long long id, ref;
	Py_ssize_t size;
	if (!PyArg_ParseTuple(args, "KKn", &id, &ref, &size))
		return NULL;
	return core_view(id, ref, size, 0);
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
	{"publish", core_publish, METH_VARARGS, publish_doc},
	{"lookup", core_lookup, METH_VARARGS, lookup_doc},
	{"lookup_wait", (PyCFunction)(void (*)(void))core_lookup_wait,
	 METH_VARARGS | METH_KEYWORDS, lookup_wait_doc},
	{"unpublish", core_unpublish, METH_VARARGS, unpublish_doc},
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
	if (error_type == NULL || PyModule_AddObjectRef(m, "Error", error_type) != 0 ||
	    PyModule_AddObjectRef(m, "Block", (PyObject *)&block_type) != 0 ||
	    PyModule_AddObjectRef(m, "HAVE_LOOKUP_WAIT", HAVE_LOOKUP_WAIT ? Py_True : Py_False) != 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
