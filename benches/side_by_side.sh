#!/usr/bin/env bash
# Side by side on one diverged pair: stock pg_rewind and gsbuild rebuild identical copies of the
# old primary from the same running new primary. Prints wall times and the dry-run JSON plan.
#
#   bash benches/side_by_side.sh [SCALE] [TXNS]        (defaults: 20 and 2000)
#
# PG_BIN picks the PostgreSQL toolset (default: Debian's 15). Runs servers as `postgres` when
# started as root. Uses a release build of gsbuild.
set -euo pipefail
scale=${1:-20}
txns=${2:-2000}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
gsbuild="$root/target/release/gsbuild"
work=$(mktemp -d /tmp/gsbuild-sbs-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$work"
cleanup() {
  for d in new old a b; do as_pg "$bin/pg_ctl" -D "$work/$d" -m immediate stop >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
conf() { printf "listen_addresses=''\nunix_socket_directories='%s'\nwal_log_hints=on\nwal_keep_size='2GB'\nmax_wal_senders=5\nport=%s\n" "$work" "$1"; }
as_pg "$bin/initdb" -D "$work/old" -A trust -U postgres --no-sync >/dev/null
conf 5501 | as_pg tee -a "$work/old/postgresql.conf" >/dev/null
as_pg "$bin/pg_ctl" -D "$work/old" -l "$work/old.log" -w start >/dev/null
as_pg "$bin/pgbench" -h "$work" -p 5501 -i -s "$scale" -q postgres 2>/dev/null
as_pg "$bin/pg_basebackup" -h "$work" -p 5501 -U postgres -D "$work/new" -R -X stream -c fast
conf 5502 | as_pg tee -a "$work/new/postgresql.conf" >/dev/null
echo "primary_conninfo='host=$work port=5501 user=postgres'" | as_pg tee -a "$work/new/postgresql.auto.conf" >/dev/null
as_pg "$bin/pg_ctl" -D "$work/new" -l "$work/new.log" -w start >/dev/null
sleep 2
as_pg "$bin/pg_ctl" -D "$work/new" -w promote >/dev/null
as_pg "$bin/pgbench" -h "$work" -p 5502 -n -t "$txns" postgres >/dev/null 2>&1
as_pg "$bin/pgbench" -h "$work" -p 5501 -n -t "$txns" postgres >/dev/null 2>&1
as_pg "$bin/psql" -h "$work" -p 5502 -d postgres -qc checkpoint
as_pg "$bin/pg_ctl" -D "$work/old" -m fast -w stop >/dev/null
as_pg cp -a "$work/old" "$work/a"
as_pg cp -a "$work/old" "$work/b"
src="host=$work port=5502 user=postgres dbname=postgres"
echo "== target $(du -sh "$work/old" | cut -f1), scale $scale, $txns transactions per side"
"$gsbuild" -D "$work/old" --source-server "$src" --dry-run --format json > "$work/plan.json"
[ -n "${SBS_PLAN:-}" ] && cp "$work/plan.json" "$SBS_PLAN"
python3 - "$work/plan.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["plan"]
d, c, t = p["divergence"], p["checkpoint"], p["totals"]
print(f"plan: diverged at {d['lsn']} on timeline {d['tli']} ({d['method']}); common checkpoint {c['lsn']} redo {c['redo']}")
print(f"plan: {t['bytes_to_copy']} bytes to copy ({t['blocks']} blocks) of {t['source_bytes']}; actions {t['actions']}")
PY
t0=$(date +%s.%N)
as_pg "$bin/pg_rewind" -D "$work/a" --source-server "$src" ${PG_REWIND_ARGS:-} >/dev/null 2>"$work/pg_rewind.err"
t1=$(date +%s.%N)
"$gsbuild" -D "$work/b" --source-server "$src" ${GSBUILD_ARGS:-} >/dev/null 2>"$work/gsbuild.err"
t2=$(date +%s.%N)
cat "$work/gsbuild.err" | tail -25 >&2
python3 -c "a=$t1-$t0; b=$t2-$t1; print(f'pg_rewind: {a:.2f} s   gsbuild: {b:.2f} s   ratio {a/b:.1f}x')"
