#!/bin/sh
# Checks that the Debian packages shortd needs are installed. As root, it
# installs what is missing; otherwise it prints the exact apt-get line and
# fails. Usage: scripts/deps.sh build|test|bench
set -eu

build="gcc make pkg-config libc6-dev libuv1-dev libsqlite3-dev libjansson-dev libcurl4-openssl-dev libidn2-dev libmaxminddb-dev libgeoip-dev geoip-database libqrencode-dev libpng-dev zlib1g-dev libjs-chart.js libssl-dev libpq-dev libicu-dev"
test="$build libcmocka-dev python3 python3-pytest sqlite3 curl libmaxmind-db-writer-perl clang libclang-rt-14-dev wrk zbar-tools chromium chromium-driver python3-selenium nginx-light util-linux procps postgresql-15 haproxy openssl groff-base systemd dpkg-dev fakeroot lintian"
bench="$build python3 curl wrk nginx-light util-linux procps redis-server redis-tools postgresql-15"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
bench) want=$bench ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
	echo "installing missing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
else
	echo "shortd needs these Debian packages:$missing" >&2
	echo "install them with:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
