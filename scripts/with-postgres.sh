#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server beside it (docs/cluster.md §7): a new
# cluster in a temporary directory, listening only on a Unix socket there, stopped and deleted
# when the command ends. The command finds it in TEST_POSTGRES (a libpq connection
# string). Installs Debian's postgresql package first when no initdb is found.
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
# `ctl start` and `ctl stop`: the outage tests stop and start this server. Durable as
# production runs it (fsync, synchronous_commit); sized for a test machine.
cat >"$DIR/ctl" <<CTL
#!/usr/bin/env bash
set -euo pipefail
case "\$1" in
    start) ${AS[*]} "$PG_CTL" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \\
        -o "-c listen_addresses='' -k $DIR -c max_connections=400 -c shared_buffers=128MB -c fsync=on -c synchronous_commit=on" \\
        start >/dev/null ;;
    stop) ${AS[*]} "$PG_CTL" -D "$DIR/data" -m fast -w stop >/dev/null ;;
esac
CTL
chmod +x "$DIR/ctl"
"$DIR/ctl" start || { cat "$DIR/server.log" >&2; exit 1; }

export TEST_POSTGRES="host=$DIR user=liveroom dbname=postgres"
export TEST_POSTGRES_CTL="$DIR/ctl"
"$@"
