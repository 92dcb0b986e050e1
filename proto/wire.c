/* SPDX-License-Identifier: MIT */
/*
 * The wire contract: see wire.h.  The builders only fill structs the caller
 * owns; the error table is the one place an errno gets its words.
 */
#include "wire.h"
#include "sizeclass.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* ---- builders ---- */

void wire_hello(Shma__Request *req, Shma__Hello *body, const char *name,
		uint64_t previous_client_id)
{
	shma__request__init(req);
	shma__hello__init(body);
	body->version = SHMA_PROTOCOL_VERSION;
	body->pid = (uint32_t)getpid();
	body->class_checksum = sizeclass_checksum();
	body->name = (char *)name;
	body->previous_client_id = previous_client_id;
	req->body_case = SHMA__REQUEST__BODY_HELLO;
	req->hello = body;
}

void wire_hello_region(Shma__Request *req)
{
	req->hello->region = 1;
}

void wire_hello_first_batches(Shma__Request *req)
{
	req->hello->first_batches = 1;
}

void wire_refill(Shma__Request *req, Shma__Refill *body, uint32_t size_class,
		 uint32_t count, uint32_t slot)
{
	shma__request__init(req);
	shma__refill__init(body);
	body->size_class = size_class;
	body->count = count;
	body->slot = slot;
	req->body_case = SHMA__REQUEST__BODY_REFILL;
	req->refill = body;
}

void wire_flush(Shma__Request *req, Shma__Flush *body, uint64_t *refs, size_t n,
		int want_reply)
{
	shma__request__init(req);
	shma__flush__init(body);
	body->refs = refs;
	body->n_refs = n;
	body->want_reply = want_reply != 0;
	req->body_case = SHMA__REQUEST__BODY_FLUSH;
	req->flush = body;
}

void wire_alloc_large(Shma__Request *req, Shma__AllocLarge *body, uint64_t size)
{
	shma__request__init(req);
	shma__alloc_large__init(body);
	body->size = size;
	req->body_case = SHMA__REQUEST__BODY_ALLOC_LARGE;
	req->alloc_large = body;
}

void wire_free_large(Shma__Request *req, Shma__FreeLarge *body, uint64_t ref)
{
	shma__request__init(req);
	shma__free_large__init(body);
	body->ref = ref;
	req->body_case = SHMA__REQUEST__BODY_FREE_LARGE;
	req->free_large = body;
}

void wire_publish(Shma__Request *req, Shma__Publish *body, const char *name, uint64_t ref)
{
	shma__request__init(req);
	shma__publish__init(body);
	body->name = (char *)name;
	body->ref = ref;
	req->body_case = SHMA__REQUEST__BODY_PUBLISH;
	req->publish = body;
}

void wire_lookup(Shma__Request *req, Shma__Lookup *body, const char *name)
{
	shma__request__init(req);
	shma__lookup__init(body);
	body->name = (char *)name;
	req->body_case = SHMA__REQUEST__BODY_LOOKUP;
	req->lookup = body;
}

void wire_unpublish(Shma__Request *req, Shma__Unpublish *body, const char *name)
{
	shma__request__init(req);
	shma__unpublish__init(body);
	body->name = (char *)name;
	req->body_case = SHMA__REQUEST__BODY_UNPUBLISH;
	req->unpublish = body;
}

void wire_roots(Shma__Request *req, Shma__Roots *body)
{
	shma__request__init(req);
	shma__roots__init(body);
	req->body_case = SHMA__REQUEST__BODY_ROOTS;
	req->roots = body;
}

void wire_stats(Shma__Request *req, Shma__Stats *body)
{
	shma__request__init(req);
	shma__stats__init(body);
	req->body_case = SHMA__REQUEST__BODY_STATS;
	req->stats = body;
}

void wire_goodbye(Shma__Request *req, Shma__Goodbye *body)
{
	shma__request__init(req);
	shma__goodbye__init(body);
	req->body_case = SHMA__REQUEST__BODY_GOODBYE;
	req->goodbye = body;
}

/* ---- errors ---- */

const char *wire_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
#define XX(code, text, exit_status) \
	case code:                  \
		return text;
		WIRE_ERRORS(XX)
#undef XX
	default:
		return strerror(err);
	}
}

int wire_exit_status(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return WIRE_EXIT_OK;
#define XX(code, text, exit_status) \
	case code:                  \
		return exit_status;
		WIRE_ERRORS(XX)
#undef XX
	default:
		return WIRE_EXIT_ERROR;
	}
}

int wire_error_code(int err)
{
	if (err < 0)
		err = -err;
	return err > 0 && err < 4096 ? err : EPROTO;
}
