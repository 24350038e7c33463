#!/usr/bin/env bash
# -b full against pg_basebackup -X stream, side by side on the same running source: a pgbench
# cluster (scale --scale) as the source, and one stopped standby of it as the target. Each round
# runs, alternating, "pg_basebackup -D EMPTY -X stream -c fast" (into an emptied directory; the
# removal is not timed) and "gsbuild -D TARGET -b full -q" (which empties the directory itself,
# timed), both with their default fsync, both timed with /usr/bin/time -v (wall time, peak
# RSS). pgbench writes on the source during every run. After the last round both copies are
# started as standbys and must catch up and count the source's rows.
#
#   bash benches/full_vs_basebackup.sh [--scale N] [--rounds N] [--pg-bin DIR] [--workdir DIR]
#                                      [--gsbuild PATH] [--jobs N]
#
# Prints one line per run and a summary (median wall time and peak RSS of each tool).
set -euo pipefail

scale=50 rounds=3 pg_bin=/opt/gsbuild-pg/16/bin work= gsbuild= jobs=4
while [ $# -gt 0 ]; do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --pg-bin) pg_bin=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --gsbuild) gsbuild=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "full_vs_basebackup: unknown argument \"$1\"" >&2; exit 2 ;;
  esac
done
die() { echo "full_vs_basebackup: error: $*" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
for t in initdb pg_ctl pg_basebackup pgbench psql; do
  [ -x "$pg_bin/$t" ] || die "$pg_bin/$t not found (--pg-bin)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found"
if [ "$(id -u)" = 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
if [ -z "$gsbuild" ]; then
  cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
  gsbuild="$root/target/release/gsbuild"
fi
gsbuild=$(realpath "$gsbuild")
[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/gsbuild-full-XXXXXX")
mkdir -p "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
src=$work/source tgt=$work/target bb=$work/basebackup port=5711
conn="host=$work port=$port user=postgres dbname=postgres"
cleanup() {
  stop_load
  for d in "$src" "$tgt" "$bb"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$pg_bin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
}
stop_load() { # pgbench runs below runuser: end its session, and it exits
  [ -n "${load_pid:-}" ] || return 0
  as_pg "$pg_bin/psql" -h "$work" -p $port -U postgres -Atc \
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbench'" postgres >/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  load_pid=
}
trap cleanup EXIT

echo "== source: initdb -k, pgbench -i -s $scale ($pg_bin)"
as_pg "$pg_bin/initdb" -k -A trust -U postgres -D "$src" >/dev/null
cat >>"$src/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
wal_level = replica
max_wal_senders = 10
wal_log_hints = on
shared_buffers = '128MB'
max_wal_size = '2GB'
# The copies must find the WAL written since their start when they are started at the end.
wal_keep_size = '4GB'
logging_collector = off
CONF
as_pg "$pg_bin/pg_ctl" -D "$src" -l "$work/source.log" -w start >/dev/null
as_pg "$pg_bin/pgbench" -h "$work" -p $port -U postgres -i -q -s "$scale" postgres >/dev/null 2>&1
as_pg "$pg_bin/psql" -h "$work" -p $port -U postgres -Atc "CHECKPOINT" postgres >/dev/null
size=$(as_pg "$pg_bin/psql" -h "$work" -p $port -U postgres -Atc "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database" postgres)
echo "== source databases: $size"
echo "== target: a standby made once with pg_basebackup, stopped"
as_pg "$pg_bin/pg_basebackup" -h "$work" -p $port -U postgres -D "$tgt" -X stream -c fast -R
# Light write load on the source during every run, as a primary in service has.
as_pg "$pg_bin/pgbench" -h "$work" -p $port -U postgres -n -c 1 -R 50 -T 100000 postgres >/dev/null 2>&1 &
load_pid=$!

measure() { # name, command...: one line "name wall_s rss_kb"
  local name=$1; shift
  local log=$work/time.$name.$RANDOM
  as_pg /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$work/$name.err" || { cat "$work/$name.err" >&2; die "$name failed"; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  echo "$name $wall $rss" | tee -a "$work/runs.txt"
}
for r in $(seq 1 "$rounds"); do
  rm -rf "$bb"
  measure pg_basebackup "$pg_bin/pg_basebackup" -h "$work" -p $port -U postgres -D "$bb" -X stream -c fast
  measure gsbuild "$gsbuild" -D "$tgt" -b full -q -j "$jobs" --source-server "$conn"
done
stop_load

echo "== both copies start as standbys and catch up"
touch "$bb/standby.signal" "$tgt/standby.signal"
# (the target's own postgresql.auto.conf is kept by the full build: a later line wins)
echo "primary_conninfo = '$conn'" | tee -a "$bb/postgresql.auto.conf" >>"$tgt/postgresql.auto.conf"
want=$(as_pg "$pg_bin/psql" -h "$work" -p $port -U postgres -Atc "SELECT count(*), sum(abalance) FROM pgbench_accounts" postgres)
lsn=$(as_pg "$pg_bin/psql" -h "$work" -p $port -U postgres -Atc "SELECT pg_current_wal_lsn()" postgres)
p=$((port + 1))
for d in "$bb" "$tgt"; do
  echo "port = $p" >>"$d/postgresql.auto.conf"
  as_pg "$pg_bin/pg_ctl" -D "$d" -l "$d.log" -w start >/dev/null
  for _ in $(seq 600); do
    ok=$(as_pg "$pg_bin/psql" -h "$work" -p $p -U postgres -Atc "SELECT pg_last_wal_replay_lsn() >= '$lsn'" postgres 2>/dev/null || true)
    [ "$ok" = t ] && break
    sleep 0.2
  done
  got=$(as_pg "$pg_bin/psql" -h "$work" -p $p -U postgres -Atc "SELECT count(*), sum(abalance) FROM pgbench_accounts" postgres)
  [ "$got" = "$want" ] || die "$d holds $got, the source $want"
  echo "$(basename "$d"): caught up, pgbench_accounts $got"
  as_pg "$pg_bin/pg_ctl" -D "$d" -m fast -w stop >/dev/null
  p=$((p + 1))
done

echo "== summary (median of $rounds; wall s, peak RSS MB)"
python3 - "$work/runs.txt" <<'PY'
import sys, statistics
runs = {}
for line in open(sys.argv[1]):
    name, wall, rss = line.split()
    runs.setdefault(name, []).append((float(wall), int(rss)))
for name, rs in runs.items():
    walls = [w for w, _ in rs]
    print(f"{name:14} median {statistics.median(walls):6.2f} s  runs {' '.join(f'{w:.2f}' for w in walls)}  peak RSS {max(r for _, r in rs)/1024:.0f} MB")
PY
