# One line per suite file: tests_check_shmalloc_SOURCES += tests/check_<module>.c
tests_check_shmalloc_SOURCES += tests/check_frame.c
