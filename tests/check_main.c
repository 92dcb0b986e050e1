/* SPDX-License-Identifier: MIT */
/*
 * The one test runner: runs every suite listed in suites.h.  Check forks
 * each test, so a crash or an abort fails that test and the run goes on.
 * `tests/check_shmalloc SUITE` runs one suite (CK_RUN_SUITE works too).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"

#define DECLARE(name) Suite *make_##name##_suite(void);
SHMA_SUITES(DECLARE)

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;
	SRunner *sr = srunner_create(NULL);
#define ADD(name)                                                   \
	if (only == NULL || strcmp(only, #name) == 0)               \
		srunner_add_suite(sr, make_##name##_suite());
	SHMA_SUITES(ADD)
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
