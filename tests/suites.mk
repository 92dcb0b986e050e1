# One line per suite file: tests/unit/check_<module>.c for a module alone,
# tests/e2e/check_<area>.c for suites that start a real daemon.
tests_check_shmalloc_SOURCES += tests/unit/check_frame.c
tests_check_shmalloc_SOURCES += tests/unit/check_heap.c
tests_check_shmalloc_SOURCES += tests/unit/check_pageheap.c
tests_check_shmalloc_SOURCES += tests/unit/check_roots.c
tests_check_shmalloc_SOURCES += tests/unit/check_sizeclass.c
tests_check_shmalloc_SOURCES += tests/e2e/check_e2e.c
tests_check_shmalloc_SOURCES += tests/e2e/check_alloc.c
tests_check_shmalloc_SOURCES += tests/e2e/check_stress.c
tests_check_shmalloc_SOURCES += tests/e2e/check_ctl.c
tests_check_shmalloc_SOURCES += tests/e2e/check_hostile.c
tests_check_shmalloc_SOURCES += tests/e2e/check_debug.c
tests_check_shmalloc_SOURCES += tests/e2e/check_recovery.c
tests_check_shmalloc_SOURCES += tests/e2e/check_inflight.c
tests_check_shmalloc_SOURCES += tests/e2e/check_access.c
tests_check_shmalloc_SOURCES += tests/e2e/check_limits.c tests/e2e/raw.h
tests_check_shmalloc_SOURCES += tests/e2e/check_cxx.c
tests_check_shmalloc_SOURCES += tests/unit/heap_fixture.h
