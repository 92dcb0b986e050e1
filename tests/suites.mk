# One line per suite file: tests/unit/check_<module>.c for a module alone,
# tests/e2e/check_<area>.c for suites that start a real daemon.
tests_check_shmalloc_SOURCES += tests/unit/check_frame.c
tests_check_shmalloc_SOURCES += tests/unit/check_heap.c
tests_check_shmalloc_SOURCES += tests/unit/check_pageheap.c
tests_check_shmalloc_SOURCES += tests/unit/check_roots.c
tests_check_shmalloc_SOURCES += tests/unit/check_sizeclass.c
tests_check_shmalloc_SOURCES += tests/unit/check_dispatch.c
tests_check_shmalloc_SOURCES += tests/unit/check_table.c
tests_check_shmalloc_SOURCES += tests/unit/check_wire.c
tests_check_shmalloc_SOURCES += tests/e2e/check_e2e.c
tests_check_shmalloc_SOURCES += tests/e2e/check_alloc.c
tests_check_shmalloc_SOURCES += tests/e2e/check_stress.c
tests_check_shmalloc_SOURCES += tests/e2e/check_ctl.c
tests_check_shmalloc_SOURCES += tests/e2e/check_hostile.c
tests_check_shmalloc_SOURCES += tests/e2e/check_debug.c
tests_check_shmalloc_SOURCES += tests/e2e/check_reclaim.c tests/e2e/recovery.c tests/e2e/recovery.h
tests_check_shmalloc_SOURCES += tests/e2e/check_restart.c
tests_check_shmalloc_SOURCES += tests/e2e/check_reconnect.c
tests_check_shmalloc_SOURCES += tests/e2e/check_inflight.c
tests_check_shmalloc_SOURCES += tests/e2e/check_access.c
tests_check_shmalloc_SOURCES += tests/e2e/check_limits.c tests/e2e/raw.h
tests_check_shmalloc_SOURCES += tests/e2e/check_contract.c
tests_check_shmalloc_SOURCES += tests/unit/heap_fixture.c tests/unit/heap_fixture.h
tests_check_shmalloc_SOURCES += tests/e2e/check_perimeter.c tests/e2e/users.h
tests_check_shmalloc_SOURCES += tests/e2e/check_squat.c
tests_check_shmalloc_SOURCES += tests/e2e/check_liveness.c
tests_check_shmalloc_SOURCES += tests/e2e/check_quota.c
