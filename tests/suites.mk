# One line per suite file: tests_check_shmalloc_SOURCES += tests/check_<module>.c
tests_check_shmalloc_SOURCES += tests/check_frame.c
tests_check_shmalloc_SOURCES += tests/check_heap.c tests/instance.h
tests_check_shmalloc_SOURCES += tests/check_pageheap.c
tests_check_shmalloc_SOURCES += tests/check_roots.c
tests_check_shmalloc_SOURCES += tests/check_sizeclass.c
tests_check_shmalloc_SOURCES += tests/check_e2e.c
tests_check_shmalloc_SOURCES += tests/check_alloc.c
