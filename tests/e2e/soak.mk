# SPDX-License-Identifier: MIT
# ---- tests/e2e/soak.c: `make soak`, minutes long, not part of `make check` ----
# SOAK_SECONDS (default 120) and SOAK_CLIENTS (default 8) set its size.
if HAVE_CHECK
EXTRA_PROGRAMS += tests/soak
tests_soak_SOURCES = tests/e2e/soak.c tests/e2e/e2e.c tests/e2e/e2e.h \
	tests/instance.c tests/instance.h
tests_soak_CPPFLAGS = $(tests_check_shmalloc_CPPFLAGS)
tests_soak_CFLAGS = $(tests_check_shmalloc_CFLAGS)
tests_soak_LDADD = $(tests_check_shmalloc_LDADD)

soak: tests/soak$(EXEEXT) shmallocd$(EXEEXT)
	./tests/soak$(EXEEXT)
else
soak:
	@echo "make soak: Check was not found by configure: skipped"
endif
.PHONY: soak
