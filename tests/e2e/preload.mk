# SPDX-License-Identifier: MIT
# ---- the preload suite (tests/e2e/check_preload.c): shmalloc-run ----
# Small programs it runs under shmalloc-run, and where it finds the tools
# and the library in the build tree.
if HAVE_CHECK
check_PROGRAMS += tests/preload_keys tests/preload_errno tests/preload_fork tests/preload_region \
	tests/preload_forkfall tests/preload_forkexec
tests_preload_keys_SOURCES = tests/e2e/preload/keys.c
tests_preload_errno_SOURCES = tests/e2e/preload/errno.c
tests_preload_fork_SOURCES = tests/e2e/preload/fork.c
tests_preload_region_SOURCES = tests/e2e/preload/region.c
tests_preload_forkfall_SOURCES = tests/e2e/preload/forkfall.c
tests_preload_forkexec_SOURCES = tests/e2e/preload/forkexec.c
tests_check_shmalloc_CPPFLAGS += -DSHMALLOC_RUN_PATH='"$(abs_top_builddir)/shmalloc-run"' \
	-DPRELOAD_LIB_PATH='"$(abs_top_builddir)/.libs/libshmalloc-preload.so"' \
	-DTESTS_BUILDDIR='"$(abs_top_builddir)/tests"'
endif
