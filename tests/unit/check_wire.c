/* SPDX-License-Identifier: MIT */
/*
 * The wire contract (proto/wire.h, shm/rootname.h): each builder fills the
 * request kind it names and packs to what the daemon decodes; the error
 * table gives shma_strerror()'s texts and shmallocctl's exit statuses; a
 * root's name follows the one rule at every boundary.
 */
#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "requests.h"
#include "sizeclass.h"
#include "wire.h"

/* Packs req and decodes it again, as the daemon would. */
static Shma__Request *round_trip(const Shma__Request *req)
{
	uint8_t buf[4096];
	size_t n = shma__request__get_packed_size(req);
	ck_assert_uint_le(n, sizeof buf);
	shma__request__pack(req, buf);
	Shma__Request *back = shma__request__unpack(NULL, n, buf);
	ck_assert_ptr_nonnull(back);
	return back;
}

START_TEST(builders_fill_the_kind_they_name)
{
	Shma__Request req;
	Shma__Hello h;
	wire_hello(&req, &h, "prog", 77);
	Shma__Request *b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_HELLO);
	ck_assert_uint_eq(b->hello->version, SHMA_PROTOCOL_VERSION);
	ck_assert_uint_eq(b->hello->pid, (uint32_t)getpid());
	ck_assert_uint_eq(b->hello->class_checksum, sizeclass_checksum());
	ck_assert_str_eq(b->hello->name, "prog");
	ck_assert_uint_eq(b->hello->previous_client_id, 77);
	ck_assert(!b->hello->region); /* a library client unless it asks */
	ck_assert_uint_eq(b->id, 0);
	shma__request__free_unpacked(b, NULL);
	wire_hello_region(&req);
	b = round_trip(&req);
	ck_assert(b->hello->region);
	shma__request__free_unpacked(b, NULL);

	Shma__Refill rf;
	wire_refill(&req, &rf, 5, 100, 3);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_REFILL);
	ck_assert_uint_eq(b->refill->size_class, 5);
	ck_assert_uint_eq(b->refill->count, 100);
	ck_assert_uint_eq(b->refill->slot, 3);
	shma__request__free_unpacked(b, NULL);

	uint64_t refs[3] = {11, 22, 33};
	Shma__Flush f;
	wire_flush(&req, &f, refs, 3, 1);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_FLUSH);
	ck_assert_uint_eq(b->flush->n_refs, 3);
	ck_assert_uint_eq(b->flush->refs[2], 33);
	ck_assert(b->flush->want_reply);
	shma__request__free_unpacked(b, NULL);

	Shma__AllocLarge al;
	wire_alloc_large(&req, &al, 1 << 20);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_ALLOC_LARGE);
	ck_assert_uint_eq(b->alloc_large->size, 1 << 20);
	shma__request__free_unpacked(b, NULL);

	Shma__FreeLarge fl;
	wire_free_large(&req, &fl, 0x8000000000000001ull);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_FREE_LARGE);
	ck_assert_uint_eq(b->free_large->ref, 0x8000000000000001ull);
	shma__request__free_unpacked(b, NULL);

	Shma__Publish p;
	wire_publish(&req, &p, "queue", 42);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_PUBLISH);
	ck_assert_str_eq(b->publish->name, "queue");
	ck_assert_uint_eq(b->publish->ref, 42);
	shma__request__free_unpacked(b, NULL);

	Shma__Lookup l;
	wire_lookup(&req, &l, "queue");
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_LOOKUP);
	ck_assert_str_eq(b->lookup->name, "queue");
	shma__request__free_unpacked(b, NULL);

	Shma__Unpublish u;
	wire_unpublish(&req, &u, "queue");
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_UNPUBLISH);
	ck_assert_str_eq(b->unpublish->name, "queue");
	shma__request__free_unpacked(b, NULL);

	Shma__Roots ro;
	wire_roots(&req, &ro);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_ROOTS);
	shma__request__free_unpacked(b, NULL);

	Shma__Stats st;
	wire_stats(&req, &st);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_STATS);
	shma__request__free_unpacked(b, NULL);

	Shma__Goodbye g;
	wire_goodbye(&req, &g);
	b = round_trip(&req);
	ck_assert_int_eq(b->body_case, SHMA__REQUEST__BODY_GOODBYE);
	shma__request__free_unpacked(b, NULL);
}
END_TEST

START_TEST(the_error_table_names_and_classifies)
{
	/* The texts users and scripts have seen all along. */
	ck_assert_str_eq(wire_strerror(0), "success");
	ck_assert_str_eq(wire_strerror(-ENOMEM), "out of shared memory");
	ck_assert_str_eq(wire_strerror(ENOMEM), "out of shared memory");
	ck_assert_str_eq(wire_strerror(-EEXIST), "the name is taken");
	ck_assert_str_eq(wire_strerror(-ENAMETOOLONG), "name too long");
	ck_assert_str_eq(wire_strerror(-ECONNREFUSED), "no daemon listens on the socket");
	ck_assert_str_eq(wire_strerror(-EINVAL), strerror(EINVAL));
	ck_assert_str_eq(wire_strerror(-EBADF), strerror(EBADF)); /* not in the table */
	/* shmallocctl(1)'s exit statuses. */
	ck_assert_int_eq(wire_exit_status(0), 0);
	ck_assert_int_eq(wire_exit_status(-ENOENT), 3);
	ck_assert_int_eq(wire_exit_status(-ECONNREFUSED), 3);
	ck_assert_int_eq(wire_exit_status(-EACCES), 4);
	ck_assert_int_eq(wire_exit_status(-EPERM), 4);
	ck_assert_int_eq(wire_exit_status(-EPROTO), 5);
	ck_assert_int_eq(wire_exit_status(-EPROTONOSUPPORT), 5);
	ck_assert_int_eq(wire_exit_status(-ENOMEM), 1);
	ck_assert_int_eq(wire_exit_status(-EBADF), 1);
	/* An Error's code is a positive errno; nonsense becomes EPROTO. */
	ck_assert_int_eq(wire_error_code(-ENOENT), ENOENT);
	ck_assert_int_eq(wire_error_code(ENOENT), ENOENT);
	ck_assert_int_eq(wire_error_code(0), EPROTO);
	ck_assert_int_eq(wire_error_code(100000), EPROTO);
}
END_TEST

START_TEST(a_root_name_follows_one_rule)
{
	char name[ROOT_NAME_MAX + 2];
	memset(name, 'n', sizeof name);
	name[ROOT_NAME_MAX] = '\0';
	ck_assert_int_eq(rootname_check(name), 0); /* the longest */
	name[ROOT_NAME_MAX] = 'n';
	name[ROOT_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(rootname_check(name), -ENAMETOOLONG);
	ck_assert_int_eq(rootname_check(NULL), -EINVAL);
	ck_assert_int_eq(rootname_check(""), -EINVAL);
	ck_assert_int_eq(rootname_check("app.queue-1"), 0);
	ck_assert_int_eq(rootname_check("caf\xc3\xa9"), 0);          /* é */
	ck_assert_int_eq(rootname_check("\xf0\x9f\x90\x8d"), 0);     /* U+1F40D */
	ck_assert_int_eq(rootname_check("a\nb"), -EINVAL);           /* C0 */
	ck_assert_int_eq(rootname_check("a\x7f"), -EINVAL);          /* DEL */
	ck_assert_int_eq(rootname_check("a\xc2\x85"), -EINVAL);      /* C1 (NEL) */
	ck_assert_int_eq(rootname_check("\xc0\xaf"), -EINVAL);       /* overlong '/' */
	ck_assert_int_eq(rootname_check("\xe0\x80\xaf"), -EINVAL);   /* overlong, 3 bytes */
	ck_assert_int_eq(rootname_check("\xed\xa0\x80"), -EINVAL);   /* a surrogate */
	ck_assert_int_eq(rootname_check("\xf4\x90\x80\x80"), -EINVAL); /* past U+10FFFF */
	ck_assert_int_eq(rootname_check("\xc3"), -EINVAL);           /* cut short */
	ck_assert_int_eq(rootname_check("\xff"), -EINVAL);
}
END_TEST

/* The requests table (proto/requests.h) covers every body case of the
 * schema, and says which may be resent and which carry a root's name.
 * Planted bugs: a request added to shmalloc.proto without its line; a
 * flush (or a publish) marked as one that may be resent, so that a client
 * would free (or publish) twice across a daemon restart. */
START_TEST(the_requests_table_covers_the_schema)
{
	const ProtobufCMessageDescriptor *md = &shma__request__descriptor;
	unsigned cases = 0;
	for (unsigned i = 0; i < md->n_fields; i++) {
		if (!(md->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
			continue;
		ck_assert_msg(shma_request_known((Shma__Request__BodyCase)md->fields[i].id),
			      "Request.%s is not in proto/requests.h", md->fields[i].name);
		cases++;
	}
	ck_assert_uint_eq(cases, 16);
	ck_assert(!shma_request_known(SHMA__REQUEST__BODY__NOT_SET));
	const Shma__Request__BodyCase repeat[] = {
		SHMA__REQUEST__BODY_REFILL, SHMA__REQUEST__BODY_ALLOC_LARGE,
		SHMA__REQUEST__BODY_STATS, SHMA__REQUEST__BODY_LOOKUP, SHMA__REQUEST__BODY_ROOTS,
		SHMA__REQUEST__BODY_HEAP_OPEN, SHMA__REQUEST__BODY_HEAPS,
	};
	const Shma__Request__BodyCase once[] = {
		SHMA__REQUEST__BODY_HELLO, SHMA__REQUEST__BODY_FLUSH,
		SHMA__REQUEST__BODY_FREE_LARGE, SHMA__REQUEST__BODY_PUBLISH,
		SHMA__REQUEST__BODY_UNPUBLISH, SHMA__REQUEST__BODY_GOODBYE,
		SHMA__REQUEST__BODY_HEAP_CREATE, SHMA__REQUEST__BODY_HEAP_CLOSE,
		SHMA__REQUEST__BODY_HEAP_DESTROY,
		SHMA__REQUEST__BODY__NOT_SET,
	};
	for (size_t i = 0; i < sizeof repeat / sizeof repeat[0]; i++)
		ck_assert_int_eq(shma_request_may_repeat(repeat[i]), 1);
	for (size_t i = 0; i < sizeof once / sizeof once[0]; i++)
		ck_assert_int_eq(shma_request_may_repeat(once[i]), 0);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_PUBLISH), 1);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_LOOKUP), 1);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_UNPUBLISH), 1);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_REFILL), 0);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_ROOTS), 0);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_HEAP_CREATE), 1);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_HEAP_OPEN), 1);
	ck_assert_int_eq(shma_request_name_checked(SHMA__REQUEST__BODY_HEAP_DESTROY), 0);
}
END_TEST

Suite *make_wire_suite(void);
Suite *make_wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, builders_fill_the_kind_they_name);
	tcase_add_test(tc, the_error_table_names_and_classifies);
	tcase_add_test(tc, a_root_name_follows_one_rule);
	tcase_add_test(tc, the_requests_table_covers_the_schema);
	suite_add_tcase(s, tc);
	return s;
}
