# tools/deps.sh - sourced by tools/run and tools/test: installs the Debian packages that are
# missing, and nothing when all are there.

# Build and runtime: compiler, CMake, and the libraries coupond and couponctl link.
DEPS_BUILD="build-essential cmake pkg-config libev-dev liblmdb-dev libsodium-dev libncurses-dev libcsv-dev libpq-dev libssl-dev"
# Using it by hand: nc for the README's and coupond(8)'s sessions, man to read the pages.
DEPS_RUN="netcat-openbsd man-db"
# Tests: unit-test framework, man page linter, tmux for the dashboard tests, and PostgreSQL for
# the PostgreSQL tests (unit/test_store_pg*, blackbox_pg/*, crash_pg/*): tests/pg/cluster.sh
# runs a throwaway cluster with initdb and pg_ctl from /usr/lib/postgresql/*/bin (postgresql),
# the tests reach it with psql (postgresql-client, which postgresql pulls in), and as root it
# runs them as the postgres user (made by postgresql-common) with runuser (util-linux, which
# Debian always has).
DEPS_TEST="libcmocka-dev mandoc tmux postgresql"
# Prometheus for promtool, which checks the metrics exporter's output (blackbox/test_metrics).
DEPS_TEST="$DEPS_TEST prometheus"
# The Redis clients the tests drive (tests/clients): redis-cli and Debian's redis-py; ioredis
# comes from npm at test time. Node.js (20 or later, for ioredis 6) and npm come with the
# machine; Debian's are installed only where there are none.
DEPS_TEST="$DEPS_TEST redis-tools python3-redis"
# HAProxy, the TCP gateway in front of several nodes that ha/haproxy runs with dist/haproxy.cfg
# (Debian's package only installs it here: the tests start their own, on free ports).
DEPS_TEST="$DEPS_TEST haproxy"
# The TLS tests (tests/tls): the openssl command line makes their certificates and is one of
# their clients (s_client); Python's ssl module is another.
DEPS_TEST="$DEPS_TEST openssl python3"
command -v npm >/dev/null 2>&1 || DEPS_TEST="$DEPS_TEST nodejs npm"

deps_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing missing packages: ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
}
