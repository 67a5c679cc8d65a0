#!/bin/sh
# with_ferretdb.sh CMD [ARGS...] - run CMD with a FerretDB (a MongoDB
# wire-protocol server, SQLite data; as tests/ferretdb.py starts it) on a
# free loopback port in a temporary directory. CMD gets its URI in
# AD_FUZZ_MONGO_URI and the directory as TMPDIR. The server is stopped and
# the directory removed however CMD ends (exit, failure, a signal: INT,
# TERM or HUP is passed on to CMD as TERM); the exit status is CMD's. FERRETDB names the binary (default
# .deps/bin/ferretdb, installed by `make deps`).
set -u
bin=${FERRETDB:-.deps/bin/ferretdb}
[ -x "$bin" ] || { echo "with_ferretdb.sh: $bin missing: run make deps" >&2; exit 2; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/adfuzz-XXXXXX") || exit 2
pid= cpid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
on_signal() {
  [ -n "$cpid" ] && kill -TERM "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
  exit 130
}
trap on_signal INT TERM HUP
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || exit 2
mkdir -p "$dir/data" "$dir/tmp"
"$bin" -listen-addr "127.0.0.1:$port" -sqlite-url "file:$dir/data/" -log-level warn \
  > "$dir/ferretdb.log" 2>&1 &
pid=$!
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.5)" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -ge 200 ] || ! kill -0 "$pid" 2>/dev/null; then
    echo "with_ferretdb.sh: ferretdb did not listen on 127.0.0.1:$port:" >&2
    tail -n 20 "$dir/ferretdb.log" >&2
    exit 2
  fi
  sleep 0.1
done
# in the background, so that a signal reaches the trap at once (a shell
# runs traps only after its foreground command ends)
AD_FUZZ_MONGO_URI="mongodb://127.0.0.1:$port/" TMPDIR="$dir/tmp" "$@" &
cpid=$!
wait "$cpid"
rc=$?
cpid=
exit $rc
