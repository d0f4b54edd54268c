#!/bin/sh
# Runs one system-test file under Debian's pytest (/usr/bin/python3, not
# whatever python3 is first on PATH). The file's temporary tree (data
# directories of Galera, etcd and RabbitMQ: up to 2.4 GB for one file) is
# kept after a failure, for the post-mortem, and removed after a pass: a
# whole run then needs the space of one file's tree, not of all of them
# (11 GB per build, 22 GB for the default and ASan builds together).
#
#   run-file.sh BASETEMP TEST_FILE
set -u
basetemp=$1
shift
/usr/bin/python3 -m pytest -v -p no:cacheprovider --basetemp="$basetemp" "$@" || exit
rm -rf "$basetemp"
