#!/bin/sh
# One golden config test: run troika-agent --check-config --print on
# NN-name.yaml (in the current directory, so paths in the output stay
# relative) and compare with NN-name.ok (stdout, exit status 0) or
# NN-name.err (stderr, exit status 1). Prints a diff on mismatch.
#
# usage: run-golden.sh AGENT PLUGIN_DIR NN-name.yaml
#
# With TROIKA_GOLDEN_UPDATE=1 the expected file is rewritten from what the
# agent printed instead; review the diff before committing it.
set -u

if [ $# -ne 3 ]; then
	echo "usage: $0 AGENT PLUGIN_DIR NN-name.yaml" >&2
	exit 2
fi
agent=$1
plugin_dir=$2
yaml=$3
base=${yaml%.yaml}

if [ -f "$base.ok" ]; then
	want_status=0
	expected=$base.ok
	stream=out
elif [ -f "$base.err" ]; then
	want_status=1
	expected=$base.err
	stream=err
else
	echo "$yaml: neither $base.ok nor $base.err exists" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/troika-golden.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

"$agent" --config "$yaml" --check-config --print \
    --plugin-dir "$plugin_dir" >"$tmp/out" 2>"$tmp/err"
status=$?

if [ "${TROIKA_GOLDEN_UPDATE:-}" = 1 ]; then
	cp "$tmp/$stream" "$expected" || exit 2
	echo "$expected: updated (exit status $status, expected $want_status)"
	exit 0
fi

fail=0
if [ "$status" -ne "$want_status" ]; then
	echo "$yaml: exit status $status, expected $want_status"
	fail=1
fi
if ! diff -u "$expected" "$tmp/$stream"; then
	fail=1
fi
if [ "$fail" -ne 0 ] && [ "$stream" = out ] && [ -s "$tmp/err" ]; then
	echo "--- stderr of the agent:"
	cat "$tmp/err"
fi
exit "$fail"
