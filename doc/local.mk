# ---- doc/ and the files a release carries ----
EXTRA_DIST += README.md doc/architecture.md scripts/deps.sh scripts/build.sh scripts/run.sh \
	scripts/test.sh
