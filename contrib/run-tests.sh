#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine: installs what is
# missing, then builds and runs every test in the default build and again in
# the AddressSanitizer+UBSan build, the threaded code under ThreadSanitizer,
# then the fuzz targets for a bounded time. Exits non-zero on the first
# failure.
#
#   contrib/run-tests.sh            everything
#   TROIKA_PRESETS=default contrib/run-tests.sh   one build only
set -eu
cd "$(dirname "$0")/.."

# A system-test file needs up to 2.4 GB of scratch space while it runs
# (tests/system/run-file.sh removes it once the file passed). A full disk
# would show as puzzling failures half an hour in: say it now.
need_mb=6144
free_mb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1024) }')
if [ "$free_mb" -lt "$need_mb" ]; then
	echo "run-tests.sh: ${free_mb} MB free in $(pwd); the tests need ${need_mb} MB" >&2
	exit 1
fi

sh contrib/install-deps.sh
# Plugins are refused if group-writable: build with a strict umask.
umask 022
jobs=$(nproc 2>/dev/null || echo 2)

for preset in ${TROIKA_PRESETS:-default asan tsan fuzz}; do
	echo "==> $preset: configure and build"
	cmake --preset "$preset" >/dev/null
	cmake --build --preset "$preset" -j"$jobs"
	echo "==> $preset: tests"
	if [ "$preset" = fuzz ]; then
		ctest --test-dir build-fuzz -L fuzz --output-on-failure
	elif [ "$preset" = tsan ]; then
		# The code with threads: the worker pool and the check host
		# that hands blocking plugins to it.
		TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan \
		    -R 'worker_test|check_host_test|plugin_process_test' \
		    --output-on-failure
	else
		# System tests are RUN_SERIAL; unit tests may run side by side.
		ctest --preset "$preset" -j"$jobs" --label-exclude fuzz
	fi
done
echo "==> all tests passed"
