#!/bin/sh
# Installs every Debian 12 package that building, running and testing troika need.
# Idempotent: when everything is present it prints nothing and exits 0.
set -eu

PACKAGES="
build-essential cmake pkg-config clang libclang-rt-14-dev llvm
libevent-dev libyaml-dev libcurl4-openssl-dev libssl-dev libcmocka-dev
libhiredis-dev libmariadb-dev librabbitmq-dev libjansson-dev libsystemd-dev
libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
valgrind python3 python3-pytest python3-grpcio python3-protobuf
nginx-light monitoring-plugins-basic monitoring-plugins-standard
prometheus prometheus-alertmanager
redis-server redis-sentinel mariadb-server galera-4 rsync rabbitmq-server php-fpm socat
etcd-server etcd-client iptables monit haproxy
collectd-core libcurl3-gnutls libyajl2 dbus-daemon python3-dbus python3-gi
curl openssl procps iproute2 psmisc
"

missing=""
for pkg in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $pkg"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

# Debian packages start their default services on install where an init system
# runs them; several (nginx :80, prometheus :9090) bind wildcard addresses that
# block the per-address binds of the tests. Forbid service starts while
# installing, and restore whatever policy was there before.
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then
	saved=$(mktemp)
	$SUDO cp -p "$policy" "$saved"
fi
restore_policy() {
	if [ -n "$saved" ]; then
		$SUDO mv "$saved" "$policy"
	else
		$SUDO rm -f "$policy"
	fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
