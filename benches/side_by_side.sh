#!/usr/bin/env bash
# The end-to-end benchmark against stock pg_rewind (issue 4): for each scenario, build a
# diverged pair with real servers (a primary and a streaming standby; the standby is promoted and
# becomes the source; both sides write), then rebuild identical copies of the stopped old
# primary with pg_rewind and gsbuild, alternating A B A B, against the same running source.
# Every run is timed with /usr/bin/time -v (wall time, peak RSS), and after every run the target
# is started as a standby of the source, must catch up and must hold the source's data.
#
#   bash benches/side_by_side.sh [--scenario S1|S2|S3|all|smoke] [--rounds N] [--pg-bin DIR]
#                                [--workdir DIR] [--keep] [--gsbuild PATH] [--check-timeout S]
#
# Writes <workdir>/results/{table.md,runs.csv,scenarios.csv,machine.txt} and prints the table.
# docs/benchmarks.md says what the scenarios are and how to read the numbers.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash benches/side_by_side.sh [options]
  --scenario LIST     S1, S2, S3, all or smoke, or a comma-separated list (default: all =
                      S1,S2,S3)
      S1     pgbench scale 100, >= 1 GiB of pre-split WAL in the source's pg_wal, 2,000
             transactions on each side after the split
      S2     scale 100, 20,000 transactions on each side
      S3     S1's divergence on scale 300
      smoke  scale 1, 200 transactions, >= 16 MiB of pre-split WAL (proves the runner works)
  --rounds N          rounds of "pg_rewind, gsbuild" per scenario (default 3)
  --pg-bin DIR        PostgreSQL toolset: servers, pgbench and the pg_rewind measured
                      (default /usr/lib/postgresql/15/bin)
  --workdir DIR       where the clusters and results go: a new or empty directory
                      (default: a new /tmp/gsbuild-sbs-XXXXXX)
  --keep              keep the clusters (servers are stopped either way)
  --gsbuild PATH      measure this gsbuild binary instead of building target/release/gsbuild
  --check-timeout S   seconds a rebuilt target may take to start and catch up (default 1800)
EOF
}

die() {
  echo "side_by_side: error: $*" >&2
  exit 1
}
say() { echo "== $*"; }

scenarios=all
rounds=3
pg_bin=/usr/lib/postgresql/15/bin
work=
keep=0
gsbuild=
check_timeout=1800
while [ $# -gt 0 ]; do
  case $1 in
    --scenario) scenarios=${2:?--scenario needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --pg-bin) pg_bin=${2:?--pg-bin needs a value}; shift 2 ;;
    --workdir) work=${2:?--workdir needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    --gsbuild) gsbuild=${2:?--gsbuild needs a value}; shift 2 ;;
    --check-timeout) check_timeout=${2:?--check-timeout needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument \"$1\"" ;;
  esac
done
scenarios=${scenarios//,/ }
[ "$scenarios" = all ] && scenarios="S1 S2 S3"
for s in $scenarios; do
  case $s in S1 | S2 | S3 | smoke) ;; *) die "unknown scenario \"$s\" (S1, S2, S3, all, smoke)" ;; esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, not \"$rounds\""
[[ $check_timeout =~ ^[1-9][0-9]*$ ]] || die "--check-timeout must be a positive integer"

# ---------------------------------------------------------------------------------------------
# Tools and places.

root=$(cd "$(dirname "$0")/.." && pwd)
for t in initdb pg_ctl pg_basebackup pgbench psql pg_rewind postgres; do
  [ -x "$pg_bin/$t" ] || die "$pg_bin/$t not found: --pg-bin must name a PostgreSQL bin directory with the server, pgbench and pg_rewind"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found; it measures wall time and peak RSS (Debian: apt-get install time)"
command -v python3 >/dev/null || die "python3 not found; it parses the measurements"

if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs a \"postgres\" user to run the servers and both tools"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

if [ -z "$gsbuild" ]; then
  say "building gsbuild: cargo build --release --locked"
  cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
  gsbuild="$root/target/release/gsbuild"
fi
gsbuild=$(realpath "$gsbuild") || die "gsbuild binary not found"
as_pg test -x "$gsbuild" || die "$gsbuild is not executable by the server user"

if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/gsbuild-sbs-XXXXXX")
else
  mkdir -p "$work"
  [ -z "$(ls -A "$work")" ] || die "--workdir $work is not empty (choose a new or empty directory)"
fi
work=$(realpath "$work")
# A unix socket path is limited to 107 bytes: "<work>/.s.PGSQL.NNNNN".
[ ${#work} -le 90 ] || die "--workdir path is too long for a unix socket (${#work} > 90 bytes): $work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
as_pg test -w "$work" || die "the server user cannot write to $work (its parents must be searchable)"
results="$work/results"
as_pg mkdir -p "$results"

# Ports name the unix sockets in $work, so they only need to be unique within this run.
port_primary=5601 port_source=5602 port_target=5603

# Clusters started by this run (data directories), stopped on exit.
running=()
current_scenario_dir=
cleanup() {
  local rc=$?
  for d in ${running[@]+"${running[@]}"}; do
    [ -f "$d/postmaster.pid" ] && as_pg "$pg_bin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
  if [ "$keep" = 0 ] && [ -n "$current_scenario_dir" ]; then
    rm -rf "$current_scenario_dir/data"
  fi
  if [ "$rc" = 130 ]; then
    echo "side_by_side: interrupted; logs and results are in $work" >&2
  elif [ "$rc" != 0 ]; then
    echo "side_by_side: failed (exit $rc); logs and results are in $work" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start() { # DATADIR LOGFILE [PORT]
  local extra=()
  [ $# -ge 3 ] && extra=(-o "-p $3")
  running+=("$1")
  as_pg "$pg_bin/pg_ctl" -D "$1" -l "$2" -w -t "$check_timeout" ${extra[@]+"${extra[@]}"} start >/dev/null \
    || { tail -20 "$2" >&2; die "could not start the server in $1 (log: $2)"; }
}
pg_stop() { # DATADIR
  as_pg "$pg_bin/pg_ctl" -D "$1" -m fast -w -t 600 stop >/dev/null || die "could not stop the server in $1"
}
sql() { # PORT SQL
  as_pg "$pg_bin/psql" -XAtq -v ON_ERROR_STOP=1 -h "$work" -p "$1" -U postgres -d postgres -c "$2"
}
pgbench() { # PORT ARGS...
  local port=$1
  shift
  as_pg env PGOPTIONS="-c synchronous_commit=off" "$pg_bin/pgbench" -h "$work" -p "$port" -U postgres "$@" postgres
}

# ---------------------------------------------------------------------------------------------
# Measurements (small Python helpers: /usr/bin/time's report, gsbuild's JSON outcome, WAL).

# "WALL_SECONDS MAX_RSS_KIB" from a `/usr/bin/time -v -o FILE` report.
time_report() {
  python3 - "$1" <<'PY'
import sys
wall = rss = None
for line in open(sys.argv[1]):
    key, _, val = line.strip().rpartition(": ")
    if key.startswith("Elapsed (wall clock) time"):
        secs = 0.0
        for part in val.split(":"):
            secs = secs * 60 + float(part)
        wall = secs
    elif key == "Maximum resident set size (kbytes)":
        rss = int(val)
if wall is None or rss is None:
    sys.exit(f"no wall time or peak RSS in {sys.argv[1]}")
print(f"{wall:.2f} {rss}")
PY
}

# Bytes pg_rewind fetched from the source: the last "N/M kB (100%) copied" line of --progress.
pg_rewind_bytes() {
  local kb
  kb=$(tr '\r' '\n' <"$1" | sed -n 's|^\([0-9]*\)/[0-9]* kB (100%) copied$|\1|p' | tail -1)
  [ -n "$kb" ] || die "no \"N/M kB (100%) copied\" line in pg_rewind's output $1"
  echo $((kb * 1024))
}

# Bytes gsbuild fetched from the source, from its --format json document. The outcome names
# fetched bytes once the parallel transfer reports them; until then bytes_written (files,
# blocks, WAL and labels written to the target) is the closest measure. One place to adapt.
gsbuild_bytes() {
  python3 - "$1" <<'PY'
import json, sys
outcome = json.load(open(sys.argv[1]))["outcome"]
for key in ("bytes_fetched", "fetched_bytes", "bytes_written"):
    if isinstance(outcome.get(key), int):
        print(outcome[key])
        break
else:
    sys.exit(f"no byte count in the outcome of {sys.argv[1]}: {outcome}")
PY
}

# "BYTES SWITCH_LSN": WAL of the old timeline from before the promotion, in DATADIR/pg_wal of the
# promoted standby (timeline TLI), by segment name and the switch point in its history file.
pre_split_wal() { # DATADIR TLI SEGMENT_BYTES
  python3 - "$@" <<'PY'
import os, sys
datadir, tli, segsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wal = os.path.join(datadir, "pg_wal")
history = os.path.join(wal, f"{tli:08X}.history")
parent, switch = None, None
for line in open(history):
    f = line.split()
    if f and f[0].isdigit():
        parent, switch = int(f[0]), f[1]
if switch is None:
    sys.exit(f"no switch point in {history}")
hi, lo = switch.split("/")
switch_segno = ((int(hi, 16) << 32) | int(lo, 16)) // segsize
per_id = 0x100000000 // segsize
total = 0
for name in os.listdir(wal):
    if len(name) == 24 and all(c in "0123456789ABCDEF" for c in name) and int(name[:8], 16) == parent:
        segno = int(name[8:16], 16) * per_id + int(name[16:], 16)
        if segno <= switch_segno:
            total += os.path.getsize(os.path.join(wal, name))
print(total, switch)
PY
}

human() { numfmt --to=iec-i --suffix=B --round=nearest --format=%.1f "$1"; }

# ---------------------------------------------------------------------------------------------
# Correctness: the target starts as a standby of the source, catches up, and holds its data.

# One line per pgbench table (rows and a 64-bit hash sum over every row's text) and one for the
# relations of the public schema; the same query runs on both sides.
digest_sql="SELECT string_agg(format('%s %s %s', t, n, d), ' | ' ORDER BY t) FROM (
  SELECT 'accounts' t, count(*) n, sum(hashtextextended(x::text, 0)) d FROM pgbench_accounts x
  UNION ALL SELECT 'branches', count(*), sum(hashtextextended(x::text, 0)) FROM pgbench_branches x
  UNION ALL SELECT 'tellers', count(*), sum(hashtextextended(x::text, 0)) FROM pgbench_tellers x
  UNION ALL SELECT 'history', count(*), sum(hashtextextended(x::text, 0)) FROM pgbench_history x
  UNION ALL SELECT 'relations', count(*), sum(hashtextextended(c.oid || ' ' || c.relname || ' ' || c.relkind::text, 0))
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace) s"

# Starts DATADIR as a standby on $port_target, waits until it streams from the source on the
# source's timeline and replayed past the source's current position, compares the digest with
# the source's, stops it. Dies on any mismatch.
check_target() { # DATADIR LOG LABEL
  local dir=$1 log=$2 label=$3 want_lsn state deadline got
  [ -f "$dir/standby.signal" ] || die "$label: the tool wrote no standby.signal in $dir"
  pg_start "$dir" "$log" "$port_target"
  want_lsn=$(sql "$port_source" "SELECT pg_current_wal_lsn()")
  deadline=$((SECONDS + check_timeout))
  while :; do
    state=$(sql "$port_target" "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '$want_lsn'
      AND EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming' AND received_tli = $source_tli)" 2>&1) || true
    [ "$state" = t ] && break
    if ! as_pg "$pg_bin/pg_ctl" -D "$dir" status >/dev/null; then
      tail -20 "$log" >&2
      die "$label: the rebuilt target stopped while catching up (log: $log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "last state: $state" >&2
      tail -20 "$log" >&2
      die "$label: the target did not stream from the source on timeline $source_tli and replay to $want_lsn within ${check_timeout}s (log: $log)"
    fi
    sleep 0.2
  done
  got=$(sql "$port_target" "$digest_sql" 2>&1) || got="query failed: $got"
  pg_stop "$dir"
  if [ "$got" != "$source_digest" ]; then
    echo "source: $source_digest" >&2
    echo "target: $got" >&2
    die "$label: DATA MISMATCH between the rebuilt target and the source"
  fi
}

# ---------------------------------------------------------------------------------------------
# Scenarios.

scenario_params() {
  case $1 in
    smoke) scale=1 txns=200 min_wal_mib=16 ;;
    S1) scale=100 txns=2000 min_wal_mib=1024 ;;
    S2) scale=100 txns=20000 min_wal_mib=1024 ;;
    S3) scale=300 txns=2000 min_wal_mib=1024 ;;
  esac
  # Source, old primary (the pristine target) and one working copy: about 15 MB per scale
  # unit of data and up to 2.5 GiB of WAL each.
  need_gib=$(((scale * 15 / 1024 + 3) * 3))
  [ "$1" = smoke ] && need_gib=1
  true
}

cluster_conf() { # PORT
  cat <<EOF
listen_addresses = ''
unix_socket_directories = '$work'
port = $1
wal_keep_size = '2GB'
max_wal_senders = 10
log_line_prefix = '%m [%p] '
EOF
}

# Builds the diverged pair in $sdir/data: primary/ (the old primary, stopped: the pristine
# target), source/ (the promoted standby, running).
build_pair() {
  local d="$sdir/data" wal_bytes switch lsn avail_gib
  avail_gib=$(($(df -Pk "$work" | awk 'NR == 2 { print $4 }') / 1048576))
  if [ "$avail_gib" -lt "$need_gib" ]; then
    die "$scenario needs about ${need_gib} GiB free in $work (source, pristine target and a working copy); $avail_gib GiB are free"
  fi
  say "$scenario: building the pair (pgbench scale $scale, $txns transactions per side after the split; ${avail_gib} GiB free, about ${need_gib} GiB needed)"
  as_pg mkdir -p "$d"
  as_pg "$pg_bin/initdb" -D "$d/primary" -A trust -U postgres -E UTF8 --locale=C -k >"$sdir/logs/initdb.log"
  cluster_conf "$port_primary" | as_pg tee -a "$d/primary/postgresql.conf" >/dev/null
  pg_start "$d/primary" "$sdir/logs/primary.log"
  # The standby exists before the load, so it streams (and keeps, wal_keep_size) all its WAL,
  # as a standby that has run a while does.
  as_pg "$pg_bin/pg_basebackup" -h "$work" -p "$port_primary" -U postgres -D "$d/source" -R -X stream -c fast
  cluster_conf "$port_source" | as_pg tee -a "$d/source/postgresql.conf" >/dev/null
  pg_start "$d/source" "$sdir/logs/source.log"
  pgbench "$port_primary" -i -s "$scale" -q >"$sdir/logs/pgbench-init.log" 2>&1 \
    || { tail "$sdir/logs/pgbench-init.log" >&2; die "pgbench -i failed"; }
  # A checkpoint shortly before the split: the last common checkpoint.
  sql "$port_primary" CHECKPOINT
  lsn=$(sql "$port_primary" "SELECT pg_current_wal_lsn()")
  until [ "$(sql "$port_source" "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ]; do sleep 0.2; done
  as_pg "$pg_bin/pg_ctl" -D "$d/source" -w promote >/dev/null
  sql "$port_source" CHECKPOINT # pg_control of the source names the new timeline
  source_tli=$(sql "$port_source" "SELECT timeline_id FROM pg_control_checkpoint()")
  read -r wal_bytes switch < <(pre_split_wal "$d/source" "$source_tli" \
    "$(sql "$port_source" "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")")
  say "$scenario: split at $switch (timeline $source_tli); the source's pg_wal holds $(human "$wal_bytes") of WAL from before the split ($(du -sh "$d/source/pg_wal" | cut -f1) in all)"
  [ "$wal_bytes" -ge $((min_wal_mib * 1048576)) ] \
    || die "$scenario: the source holds $(human "$wal_bytes") of pre-split WAL, less than the ${min_wal_mib} MiB the scenario needs"
  # Both sides write after the split.
  pgbench "$port_source" -n -t "$txns" >"$sdir/logs/pgbench-source.log" 2>&1 &
  local p1=$!
  pgbench "$port_primary" -n -t "$txns" >"$sdir/logs/pgbench-primary.log" 2>&1 &
  local p2=$!
  wait $p1 || die "pgbench on the source failed (log: $sdir/logs/pgbench-source.log)"
  wait $p2 || die "pgbench on the old primary failed (log: $sdir/logs/pgbench-primary.log)"
  # Settle the source so that runs see the same source: nothing left for autovacuum, hint bits
  # set, then a checkpoint.
  sql "$port_source" "VACUUM ANALYZE" >/dev/null
  sql "$port_source" CHECKPOINT
  pg_stop "$d/primary"
  source_digest=$(sql "$port_source" "$digest_sql")
  sql "$port_source" CHECKPOINT
  target_bytes=$(du -sb "$d/primary" | cut -f1)
  source_wal_bytes=$(du -sb "$d/source/pg_wal" | cut -f1)
  pre_split_bytes=$wal_bytes
  divergence=$switch
}

# Restores the pristine target into $sdir/data/target and makes it durable (a real stopped
# target is on disk: neither tool should pay for the copy's dirty pages).
restore_target() {
  rm -rf "$sdir/data/target"
  cp -a "$sdir/data/primary" "$sdir/data/target"
  sync
}

# Runs one tool on a fresh copy of the target and checks the result; appends a line to
# runs.csv.
run_one() { # ROUND TOOL
  local round=$1 tool=$2 tag="$scenario-r$1-$2" t="$sdir/data/target" src rc wall rss bytes t0 check_s
  src="host=$work port=$port_source user=postgres dbname=postgres"
  restore_target
  set +e
  case $tool in
    pg_rewind)
      as_pg /usr/bin/time -v -o "$sdir/logs/$tag.time" \
        "$pg_bin/pg_rewind" -D "$t" --source-server "$src" -R --progress \
        >"$sdir/logs/$tag.out" 2>"$sdir/logs/$tag.err"
      rc=$? ;;
    gsbuild)
      as_pg /usr/bin/time -v -o "$sdir/logs/$tag.time" \
        "$gsbuild" -q -D "$t" --source-server "$src" -R --format json \
        >"$sdir/logs/$tag.out" 2>"$sdir/logs/$tag.err"
      rc=$? ;;
  esac
  set -e
  if [ "$rc" != 0 ]; then
    tail -20 "$sdir/logs/$tag.err" >&2
    die "$tag: $tool exited with status $rc (output: $sdir/logs/$tag.err)"
  fi
  read -r wall rss < <(time_report "$sdir/logs/$tag.time")
  case $tool in
    pg_rewind) bytes=$(pg_rewind_bytes "$sdir/logs/$tag.err") ;;
    gsbuild) bytes=$(gsbuild_bytes "$sdir/logs/$tag.out") ;;
  esac
  t0=$(date +%s.%N)
  check_target "$t" "$sdir/logs/$tag-target.log" "$tag"
  check_s=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
  echo "$scenario,$round,$tool,$wall,$rss,$bytes,$check_s,ok" >>"$results/runs.csv"
  say "$tag: ${wall} s, peak RSS $((rss / 1024)) MiB, fetched $(human "$bytes"); check passed: standby caught up with identical data (${check_s} s)"
}

# The markdown table, from runs.csv and scenarios.csv.
make_table() {
  python3 - "$results/runs.csv" "$results/scenarios.csv" <<'PY'
import csv, statistics, sys
runs = list(csv.DictReader(open(sys.argv[1])))
scen = {r["scenario"]: r for r in csv.DictReader(open(sys.argv[2]))}

def mib(b):
    return f"{int(b) / 1048576:,.0f} MiB" if int(b) >= 10 * 1048576 else f"{int(b) / 1048576:,.1f} MiB"

def gib(b):
    return f"{int(b) / 2**30:.1f} GiB" if int(b) >= 2**30 else mib(b)

print("| scenario | target | pre-split WAL at source | pg_rewind wall | gsbuild wall | pg_rewind / gsbuild | pg_rewind peak RSS | gsbuild peak RSS | pg_rewind fetched | gsbuild fetched | runs |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name, s in scen.items():
    med = {}
    cells = {}
    n = 0
    for tool in ("pg_rewind", "gsbuild"):
        rs = [r for r in runs if r["scenario"] == name and r["tool"] == tool]
        if not rs:
            sys.exit(f"no {tool} runs for {name}")
        walls = [float(r["wall_s"]) for r in rs]
        med[tool] = statistics.median(walls)
        cells[tool] = (
            f"{med[tool]:.2f} s ({min(walls):.2f}–{max(walls):.2f})",
            mib(statistics.median(int(r["max_rss_kib"]) * 1024 for r in rs)),
            mib(statistics.median(int(r["bytes_fetched"]) for r in rs)),
        )
        n = len(rs)
    ratio = med["pg_rewind"] / med["gsbuild"] if med["gsbuild"] > 0 else float("inf")
    print(f"| {name} (scale {s['scale']}, {int(s['txns']):,} tx/side) | {gib(s['target_bytes'])} | {gib(s['pre_split_wal_bytes'])} "
          f"| {cells['pg_rewind'][0]} | {cells['gsbuild'][0]} | {ratio:.1f}× "
          f"| {cells['pg_rewind'][1]} | {cells['gsbuild'][1]} | {cells['pg_rewind'][2]} | {cells['gsbuild'][2]} | {n} + {n} |")
PY
}

machine_info() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
  local dev
  dev=$(df -P "$work" | awk 'NR == 2 { print $1 }')
  echo "disk: $dev ($(findmnt -no FSTYPE --target "$work" 2>/dev/null || echo '?'), $(lsblk -ndo SIZE,ROTA,MODEL "$dev" 2>/dev/null | awk '{ printf "%s, %s", $1, ($2 == 1 ? "rotational per the kernel" : "non-rotational per the kernel") }'))"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "postgres: $("$pg_bin/postgres" --version), pg_rewind: $("$pg_bin/pg_rewind" --version)"
  echo "gsbuild: $("$gsbuild" --version) at $gsbuild, commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "command: bash benches/side_by_side.sh --scenario ${scenarios// /,} --rounds $rounds --pg-bin $pg_bin"
}

# ---------------------------------------------------------------------------------------------
# Main.

machine_info | as_pg tee "$results/machine.txt"
echo "scenario,round,tool,wall_s,max_rss_kib,bytes_fetched,check_s,check" | as_pg tee "$results/runs.csv" >/dev/null
echo "scenario,scale,txns,target_bytes,source_pg_wal_bytes,pre_split_wal_bytes,divergence_lsn,setup_s,runs_s,total_s" \
  | as_pg tee "$results/scenarios.csv" >/dev/null
for scenario in $scenarios; do
  scenario_params "$scenario"
  sdir="$work/$scenario"
  current_scenario_dir=$sdir
  as_pg mkdir -p "$sdir/logs"
  start=$SECONDS
  build_pair
  setup_s=$((SECONDS - start))
  say "$scenario: pair ready in ${setup_s} s; target $(human "$target_bytes"), source pg_wal $(human "$source_wal_bytes")"
  for ((r = 1; r <= rounds; r++)); do
    run_one "$r" pg_rewind
    run_one "$r" gsbuild
  done
  pg_stop "$sdir/data/source"
  total_s=$((SECONDS - start))
  echo "$scenario,$scale,$txns,$target_bytes,$source_wal_bytes,$pre_split_bytes,$divergence,$setup_s,$((total_s - setup_s)),$total_s" >>"$results/scenarios.csv"
  say "$scenario: done in ${total_s} s (pair ${setup_s} s, runs and checks $((total_s - setup_s)) s)"
  [ "$keep" = 0 ] && rm -rf "$sdir/data"
  current_scenario_dir=
done
make_table | as_pg tee "$results/table.md"
say "results: $results (table.md, runs.csv, scenarios.csv, machine.txt)"
