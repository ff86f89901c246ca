#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server beside it (docs/cluster.md §10): a new
# cluster in a temporary directory, listening on a Unix socket there and, over TLS only for
# the TLS tests, on a loopback port; stopped and deleted when the command ends. The command
# finds it in TEST_POSTGRES (a libpq connection string); TEST_POSTGRES_TLS is the loopback
# address, whose certificate TEST_POSTGRES_CA (a throwaway authority) signed. Installs
# Debian's postgresql package first when no initdb is found.
#
#   scripts/with-postgres.sh cargo test --workspace
set -euo pipefail

find_bin() {
    local found
    found=$(command -v "$1" 2>/dev/null || true)
    if [[ -z "$found" ]]; then
        found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    echo "$found"
}

if [[ -z "$(find_bin initdb)" ]]; then
    echo "with-postgres: no initdb; installing Debian's postgresql package" >&2
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
fi
INITDB=$(find_bin initdb)
PG_CTL=$(find_bin pg_ctl)
[[ -n "$INITDB" && -n "$PG_CTL" ]] || { echo "with-postgres: initdb or pg_ctl not found" >&2; exit 1; }

DIR=$(mktemp -d /tmp/liveroom-pg.XXXXXX)
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user.
AS=()
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$DIR"
    AS=(runuser -u postgres --)
fi

stop() {
    "$DIR/ctl" stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap stop EXIT

"${AS[@]}" "$INITDB" -D "$DIR/data" -U liveroom --auth=trust --encoding=UTF8 --locale=C >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
# A throwaway certificate authority, and the server's certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=liveroom-test-ca \
    -keyout "$DIR/ca.key" -out "$DIR/ca.crt" >"$DIR/openssl.log" 2>&1
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$DIR/server.key" -out "$DIR/server.csr" >>"$DIR/openssl.log" 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$DIR/server.ext"
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
    -days 2 -extfile "$DIR/server.ext" -out "$DIR/server.crt" >>"$DIR/openssl.log" 2>&1
chmod 600 "$DIR/server.key"
[[ $(id -u) -eq 0 ]] && chown postgres "$DIR/server.key" "$DIR/server.crt"

# `ctl start` and `ctl stop`: the outage tests stop and start this server. Durable as
# production runs it (fsync, synchronous_commit); sized for a test machine.
cat >"$DIR/ctl" <<CTL
#!/usr/bin/env bash
set -euo pipefail
case "\$1" in
    start) ${AS[*]} "$PG_CTL" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \\
        -o "-p \$(cat $DIR/port) -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=$DIR/server.crt -c ssl_key_file=$DIR/server.key -k $DIR -c max_connections=400 -c shared_buffers=128MB -c fsync=on -c synchronous_commit=on" \\
        start >/dev/null ;;
    stop) ${AS[*]} "$PG_CTL" -D "$DIR/data" -m fast -w stop >/dev/null ;;
esac
CTL
chmod +x "$DIR/ctl"
# A loopback port picked at random; another one if it was taken.
for attempt in 1 2 3 4 5; do
    echo $((20000 + RANDOM % 40000)) >"$DIR/port"
    "$DIR/ctl" start && break
    [[ $attempt -eq 5 ]] && { cat "$DIR/server.log" >&2; exit 1; }
done
PORT=$(cat "$DIR/port")

export TEST_POSTGRES="host=$DIR port=$PORT user=liveroom dbname=postgres"
export TEST_POSTGRES_TLS="host=127.0.0.1 port=$PORT user=liveroom dbname=postgres"
export TEST_POSTGRES_CA="$DIR/ca.crt"
export TEST_POSTGRES_CTL="$DIR/ctl"
"$@"
