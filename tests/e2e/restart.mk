# SPDX-License-Identifier: MIT
# ---- the restart_live suite (tests/e2e/check_restart_live.c) ----
# The program it runs under shmalloc-run while it kills the daemon.
if HAVE_CHECK
check_PROGRAMS += tests/restart_churn
tests_restart_churn_SOURCES = tests/e2e/restart/churn.c
endif
