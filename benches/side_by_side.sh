#!/usr/bin/env bash
# The end-to-end benchmark against stock pg_rewind (issue 4): for each scenario, build a
# diverged pair with real servers (a primary and a streaming standby; the standby is promoted and
# becomes the source; both sides write), then rebuild identical copies of the stopped old
# primary with pg_rewind and gsbuild, alternating A B A B, against the same running source.
# Every run is timed with /usr/bin/time -v (wall time, peak RSS) and until the rebuilt target,
# started as a standby, has replayed to the source's WAL position at the command's start (time to
# a caught-up standby: gsbuild starts it itself, pg_rewind's is started with pg_ctl); then it must
# stream from the source and hold the source's data. Each scenario also measures the disk's
# durable write bandwidth (dd ... conv=fsync) to put gsbuild's time next to the physical limit:
# the bytes that had to move written at that bandwidth (issue 14).
#
#   bash benches/side_by_side.sh [--scenario S1|S2|P|S3|S4|L1|L2|F100K|all|smoke] [--rounds N]
#                                [--pg-bin DIR] [--workdir DIR] [--keep] [--gsbuild PATH]
#                                [--check-timeout S] [--dd-mib N]
#
# Writes <workdir>/results/{table.md,runs.csv,scenarios.csv,machine.txt} and prints the table.
# docs/benchmarks.md says what the scenarios are and how to read the numbers.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash benches/side_by_side.sh [options]
  --scenario LIST     S1, S2, P, S3, S4, L1, L2, F100K, all or smoke, or a comma-separated
                      list (default: all = S1,S2,S3)
      S1     pgbench scale 100, >= 1 GiB of pre-split WAL in the source's pg_wal, 2,000
             transactions on each side after the split
      S2     scale 100, 20,000 transactions on each side
      P      the plain case: S2 with no older WAL kept on the source (its standby is made
             after the load, so its pg_wal holds only WAL from about the split on)
      S3     S1's divergence on scale 300
      S4     S1's divergence on scale 1,000 (a cluster of about 15 GiB; needs about 51 GiB
             free for the source, the pristine target and a working copy)
      L1     S1 with the source in a network namespace behind a veth pair (tc tbf: 1 Gbit/s
             each way) and a relay adding 1 ms per round trip (benches/delay_proxy.py);
             both tools connect over TCP; needs root
      L2     the same at 100 Mbit/s, 20 ms round trip
      F100K  25,000 tables with a primary key and a TOAST table (100,000 relation files)
             on pgbench scale 10, 2,000 transactions on each side; gsbuild's dry run
             (listings, WAL scan, plan) is timed too
      smoke  scale 1, 200 transactions, >= 16 MiB of pre-split WAL (proves the runner works)
  --rounds N          rounds of "pg_rewind, gsbuild" per scenario (default 3)
  --pg-bin DIR        PostgreSQL toolset: servers, pgbench and the pg_rewind measured
                      (default /usr/lib/postgresql/15/bin)
  --workdir DIR       where the clusters and results go: a new or empty directory
                      (default: a new /tmp/gsbuild-sbs-XXXXXX)
  --keep              keep the clusters (servers are stopped either way)
  --gsbuild PATH      measure this gsbuild binary instead of building target/release/gsbuild
  --check-timeout S   seconds a rebuilt target may take to start and catch up (default 1800)
  --dd-mib N          MiB written by the durable write bandwidth test per round (default 512)
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
dd_mib=512
while [ $# -gt 0 ]; do
  case $1 in
    --scenario) scenarios=${2:?--scenario needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --pg-bin) pg_bin=${2:?--pg-bin needs a value}; shift 2 ;;
    --workdir) work=${2:?--workdir needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    --gsbuild) gsbuild=${2:?--gsbuild needs a value}; shift 2 ;;
    --check-timeout) check_timeout=${2:?--check-timeout needs a value}; shift 2 ;;
    --dd-mib) dd_mib=${2:?--dd-mib needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument \"$1\"" ;;
  esac
done
scenarios=${scenarios//,/ }
[ "$scenarios" = all ] && scenarios="S1 S2 S3"
for s in $scenarios; do
  case $s in
    S1 | S2 | P | S3 | S4 | L1 | L2 | F100K | smoke) ;;
    *) die "unknown scenario \"$s\" (S1, S2, P, S3, S4, L1, L2, F100K, all, smoke)" ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, not \"$rounds\""
[[ $check_timeout =~ ^[1-9][0-9]*$ ]] || die "--check-timeout must be a positive integer"
[[ $dd_mib =~ ^[1-9][0-9]*$ ]] || die "--dd-mib must be a positive integer"

# ---------------------------------------------------------------------------------------------
# Tools and places.

root=$(cd "$(dirname "$0")/.." && pwd)
for t in initdb pg_ctl pg_basebackup pgbench psql pg_rewind postgres; do
  [ -x "$pg_bin/$t" ] || die "$pg_bin/$t not found: --pg-bin must name a PostgreSQL bin directory with the server, pgbench and pg_rewind"
done
[ -x /usr/bin/time ] || die "/usr/bin/time (GNU time) not found; it measures wall time and peak RSS (Debian: apt-get install time)"
command -v python3 >/dev/null || die "python3 not found; it parses the measurements"
case " $scenarios " in
  *" L1 "* | *" L2 "*)
    [ "$(id -u)" = 0 ] || die "L1 and L2 put the source in a network namespace: run as root"
    if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then die "L1 and L2 need ip and tc (iproute2)"; fi
    ;;
esac

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
    if [ -f "$d/postmaster.pid" ]; then
      as_pg "$pg_bin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  net_down
  rm -f "$work/ddtest"
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

pg_start() { # DATADIR LOGFILE [PORT [NETNS [LISTEN_ADDRESS]]]
  local extra=() run=(as_pg)
  [ $# -ge 3 ] && extra=(-o "-p $3")
  if [ $# -ge 5 ]; then # in a network namespace (as root), listening on its address
    run=(ip netns exec "$4" runuser -u postgres --)
    extra=(-o "-p $3 -c listen_addresses=$5")
  fi
  running+=("$1")
  "${run[@]}" "$pg_bin/pg_ctl" -D "$1" -l "$2" -w -t "$check_timeout" ${extra[@]+"${extra[@]}"} start >/dev/null \
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
# The shaped link (L1, L2): the source runs in the network namespace $netns, joined to this one
# by a veth pair whose two ends are rate-limited with tc tbf; this kernel has no netem
# (CONFIG_NET_SCH_NETEM is not set), so half the round trip is added each way by a TCP relay in
# this namespace (benches/delay_proxy.py, 127.0.0.1:$port_relay -> the source over the veth).
# Both tools and the rebuilt standby connect to the relay.

netns=gsbuild-sbs-$$ veth_host=gsbsbh$$ veth_ns=gsbsbn$$
net_host_addr=10.203.0.2 net_source_addr=10.203.0.1
net_is_up=0 port_relay=5612 relay_pid=
net_up() {
  say "network: namespace $netns, veth $veth_host ($net_host_addr) <-> $veth_ns ($net_source_addr)"
  net_is_up=1
  ip netns add "$netns"
  ip link add "$veth_host" type veth peer name "$veth_ns"
  ip link set "$veth_ns" netns "$netns"
  ip addr add "$net_host_addr/24" dev "$veth_host"
  ip link set "$veth_host" up
  ip -n "$netns" addr add "$net_source_addr/24" dev "$veth_ns"
  ip -n "$netns" link set "$veth_ns" up
  ip -n "$netns" link set lo up
}
net_shape() { # RATE RTT_MS
  local half burst=256kb i
  half=$(python3 -c "print($2 / 2000)")
  tc qdisc replace dev "$veth_host" root tbf rate "$1" burst "$burst" latency 100ms
  ip netns exec "$netns" tc qdisc replace dev "$veth_ns" root tbf rate "$1" burst "$burst" latency 100ms
  python3 "$root/benches/delay_proxy.py" 127.0.0.1 "$port_relay" "$net_source_addr" "$port_source" "$half" \
    >"$sdir/logs/delay_proxy.log" 2>&1 &
  relay_pid=$!
  for ((i = 0; i < 50; i++)); do
    grep -q listening "$sdir/logs/delay_proxy.log" && break
    sleep 0.1
  done
  grep -q listening "$sdir/logs/delay_proxy.log" || die "the delay relay did not start (log: $sdir/logs/delay_proxy.log)"
  src_conn="host=127.0.0.1 port=$port_relay user=postgres dbname=postgres"
  say "network: $1 each way (tbf), ${2} ms round trip (relay); a query's round trip through the relay: $(relay_rtt)"
}
# The median of 20 "SELECT 1" round trips on one connection through the relay.
relay_rtt() {
  local i
  for ((i = 0; i < 20; i++)); do echo "SELECT 1;"; done \
    | as_pg "$pg_bin/psql" -XAtq -h 127.0.0.1 -p "$port_relay" -U postgres -d postgres -c '\timing on' -f - 2>&1 \
    | python3 -c 'import re, statistics, sys
ts = [float(m.group(1)) for m in re.finditer(r"Time: ([0-9.]+) ms", sys.stdin.read())]
print(f"{statistics.median(ts):.2f} ms" if ts else "?")'
}
net_down() {
  if [ -n "$relay_pid" ]; then
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
    relay_pid=
  fi
  [ "$net_is_up" = 1 ] || return 0
  ip link del "$veth_host" 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  net_is_up=0
}

# Durable write bandwidth of the file system holding the clusters, bytes per second: dd of
# --dd-mib MiB with one fsync at the end (conv=fsync), as the target's writes are.
write_bandwidth() {
  local out
  out=$(dd if=/dev/zero of="$work/ddtest" bs=1M count="$dd_mib" conv=fsync 2>&1) || die "dd failed: $out"
  rm -f "$work/ddtest"
  python3 -c 'import re, sys
m = re.search(r"^(\d+) bytes .* copied, ([0-9.]+) s", sys.argv[1], re.M)
print(int(int(m.group(1)) / float(m.group(2))))' "$out"
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

# Bytes that had to move, from gsbuild's --format json document: the plan's files and blocks
# (totals.bytes_to_copy) and the WAL recovery needs that the target did not already have (the
# outcome's fetched WAL: streaming starts after the target's own segments of common history).
gsbuild_must_move() {
  python3 - "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print(doc["plan"]["totals"]["bytes_to_copy"] + doc["outcome"]["fetched_wal_bytes"])
PY
}

# Seconds from START (epoch) to gsbuild's "starting ... as a standby" line in a stderr copy
# whose lines are stamped with the epoch they were read at: the rebuild's own time.
gsbuild_tool_s() { # STAMPED_STDERR START
  python3 - "$@" <<'PY'
import sys
for line in open(sys.argv[1]):
    stamp, _, text = line.partition(" ")
    if "starting" in text and "as a standby" in text:
        print(f"{float(stamp) - float(sys.argv[2]):.2f}")
        break
else:
    sys.exit(f"no \"starting ... as a standby\" line in {sys.argv[1]}")
PY
}

# Every line of stdin, prefixed with the epoch it was read at.
stamp_lines() {
  local line
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$EPOCHREALTIME"; }

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

# Polls QUERY on the running standby in DATADIR (on $port_target) every PERIOD seconds until it
# answers t; dies when the server stops or WHAT is not reached within $check_timeout seconds.
poll_target() { # DATADIR LOG LABEL PERIOD QUERY WHAT
  local dir=$1 log=$2 label=$3 period=$4 query=$5 what=$6 state deadline
  deadline=$((SECONDS + check_timeout))
  while :; do
    state=$(sql "$port_target" "$query" 2>&1) || true
    [ "$state" = t ] && return 0
    if ! as_pg "$pg_bin/pg_ctl" -D "$dir" status >/dev/null; then
      tail -20 "$log" >&2
      die "$label: the rebuilt target stopped while catching up (log: $log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "last state: $state" >&2
      tail -20 "$log" >&2
      die "$label: the target did not $what within ${check_timeout}s (log: $log)"
    fi
    sleep "$period"
  done
}

# Waits until the running standby in DATADIR has replayed to WANT_LSN: the source's position
# when the tool started. Polled every 50 ms over the local socket.
wait_caught_up() { # DATADIR LOG LABEL WANT_LSN
  poll_target "$1" "$2" "$3" 0.05 "SELECT pg_last_wal_replay_lsn() >= '$4'" "replay to $4"
}

# The running standby in DATADIR (on $port_target) must stream from the source on the source's
# timeline and replay past the source's current position; then its digest must equal the
# source's. Stops it. Dies on any mismatch.
verify_target() { # DATADIR LOG LABEL
  local dir=$1 log=$2 label=$3 want_lsn got
  [ -f "$dir/standby.signal" ] || die "$label: the tool wrote no standby.signal in $dir"
  want_lsn=$(sql "$port_source" "SELECT pg_current_wal_lsn()")
  poll_target "$dir" "$log" "$label" 0.2 \
    "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '$want_lsn'
      AND EXISTS (SELECT FROM pg_stat_wal_receiver WHERE status = 'streaming' AND received_tli = $source_tli)" \
    "stream from the source on timeline $source_tli and replay to $want_lsn"
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
  link='' tables=0 dry_run=0 late_standby=0
  case $1 in
    smoke) scale=1 txns=200 min_wal_mib=16 dry_run=1 ;;
    S1) scale=100 txns=2000 min_wal_mib=1024 ;;
    S2) scale=100 txns=20000 min_wal_mib=1024 ;;
    P) scale=100 txns=20000 min_wal_mib=0 late_standby=1 ;;
    S3) scale=300 txns=2000 min_wal_mib=1024 ;;
    S4) scale=1000 txns=2000 min_wal_mib=1024 ;;
    L1) scale=100 txns=2000 min_wal_mib=1024 link="1gbit 1" ;;
    L2) scale=100 txns=2000 min_wal_mib=1024 link="100mbit 20" ;;
    F100K) scale=10 txns=2000 min_wal_mib=16 tables=25000 dry_run=1 ;;
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

# F100K: N tables, each with a primary key and a TOAST table (4 relation files: heap, TOAST
# heap, TOAST index, primary key), 250 to a transaction (the standby replays their locks).
create_tables() { # N
  say "$scenario: creating $1 tables ($(($1 * 4)) relation files)"
  # shellcheck disable=SC2016 # Python text, with SQL's dollar quotes
  python3 -c 'import sys
n = int(sys.argv[1])
for lo in range(1, n + 1, 250):
    hi = min(lo + 249, n)
    print(f"DO $$ BEGIN FOR i IN {lo}..{hi} LOOP EXECUTE format(%s, i); END LOOP; END $$;"
          % "$q$CREATE TABLE f_%s (id int PRIMARY KEY, v text)$q$")' "$1" \
    | as_pg "$pg_bin/psql" -XAtq -v ON_ERROR_STOP=1 -h "$work" -p "$port_primary" -U postgres -d postgres -f - \
      >"$sdir/logs/create-tables.log" 2>&1 || { tail "$sdir/logs/create-tables.log" >&2; die "creating tables failed"; }
}

# The standby of the primary in DIR/primary: DIR/source, streaming (on the shaped link's
# namespace for L1, L2); sets src_conn.
make_standby() { # DIR
  local d=$1
  as_pg "$pg_bin/pg_basebackup" -h "$work" -p "$port_primary" -U postgres -D "$d/source" -R -X stream -c fast
  cluster_conf "$port_source" | as_pg tee -a "$d/source/postgresql.conf" >/dev/null
  if [ -n "$link" ]; then
    net_up
    pg_start "$d/source" "$sdir/logs/source.log" "$port_source" "$netns" "$net_source_addr"
    src_conn="host=$net_source_addr port=$port_source user=postgres dbname=postgres"
  else
    pg_start "$d/source" "$sdir/logs/source.log"
    src_conn="host=$work port=$port_source user=postgres dbname=postgres"
  fi
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
  # The shaped link's addresses (L1, L2), for both tools and the rebuilt standby.
  printf 'host all all 10.203.0.0/24 trust\nhost replication all 10.203.0.0/24 trust\n' \
    | as_pg tee -a "$d/primary/pg_hba.conf" >/dev/null
  pg_start "$d/primary" "$sdir/logs/primary.log"
  # The standby exists before the load, so it streams (and keeps, wal_keep_size) all its WAL,
  # as a standby that has run a while does; P's is made after the load, so that its pg_wal holds
  # only WAL from its base backup on (no older WAL kept on the source).
  [ "$late_standby" = 1 ] || make_standby "$d"
  pgbench "$port_primary" -i -s "$scale" -q >"$sdir/logs/pgbench-init.log" 2>&1 \
    || { tail "$sdir/logs/pgbench-init.log" >&2; die "pgbench -i failed"; }
  [ "$tables" -gt 0 ] && create_tables "$tables"
  if [ "$late_standby" = 1 ]; then
    sql "$port_primary" CHECKPOINT
    make_standby "$d"
  fi
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
  # shellcheck disable=SC2086 # "RATE RTT_MS"
  [ -n "$link" ] && net_shape $link
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
  # The rebuilt standby listens on its own port (gsbuild keeps the target's configuration and
  # starts it; pg_rewind copies the source's, and pg_ctl gets -p).
  echo "port = $port_target" | as_pg tee -a "$sdir/data/target/postgresql.conf" >/dev/null
  sync
}

# Runs one tool on a fresh copy of the target, times it until the target, started as a standby,
# has replayed to the source's position at the start, and checks the result; appends a line to
# runs.csv. Tool time: pg_rewind's whole run; gsbuild's (which starts the standby itself, -D)
# until it says it starts the standby.
run_one() { # ROUND TOOL WRITE_BW
  local round=$1 tool=$2 bw=$3 tag="$scenario-r$1-$2" t="$sdir/data/target" rc wall rss bytes
  local move='' tool_s caught_s t0 want_lsn check_s log
  restore_target
  want_lsn=$(sql "$port_source" "SELECT pg_current_wal_lsn()")
  set +e
  case $tool in
    pg_rewind)
      t0=$EPOCHREALTIME
      as_pg /usr/bin/time -v -o "$sdir/logs/$tag.time" \
        "$pg_bin/pg_rewind" -D "$t" --source-server "$src_conn" -R --progress \
        >"$sdir/logs/$tag.out" 2>"$sdir/logs/$tag.err"
      rc=$?
      tool_s=$(since "$t0") ;;
    gsbuild)
      running+=("$t")
      t0=$EPOCHREALTIME
      as_pg /usr/bin/time -v -o "$sdir/logs/$tag.time" \
        "$gsbuild" -D "$t" --source-server "$src_conn" -R --format json --ctl "$pg_bin/pg_ctl" \
        2>&1 >"$sdir/logs/$tag.out" | stamp_lines >"$sdir/logs/$tag.err"
      rc=${PIPESTATUS[0]} ;;
  esac
  set -e
  if [ "$rc" != 0 ]; then
    tail -20 "$sdir/logs/$tag.err" >&2
    die "$tag: $tool exited with status $rc (output: $sdir/logs/$tag.err)"
  fi
  # Nothing else between the tool and the caught-up standby (the output is parsed after).
  case $tool in
    pg_rewind)
      log="$sdir/logs/$tag-target.log"
      [ -f "$t/standby.signal" ] || die "$tag: the tool wrote no standby.signal in $t"
      pg_start "$t" "$log" "$port_target" ;;
    gsbuild)
      log="$t/gsbuild-server.log"
      as_pg "$pg_bin/pg_ctl" -D "$t" status >/dev/null || die "$tag: gsbuild -D left the target stopped" ;;
  esac
  wait_caught_up "$t" "$log" "$tag" "$want_lsn"
  caught_s=$(since "$t0")
  read -r wall rss < <(time_report "$sdir/logs/$tag.time")
  case $tool in
    pg_rewind) bytes=$(pg_rewind_bytes "$sdir/logs/$tag.err") ;;
    gsbuild)
      bytes=$(gsbuild_bytes "$sdir/logs/$tag.out")
      move=$(gsbuild_must_move "$sdir/logs/$tag.out")
      tool_s=$(gsbuild_tool_s "$sdir/logs/$tag.err" "$t0") ;;
  esac
  t0=$EPOCHREALTIME
  verify_target "$t" "$log" "$tag"
  check_s=$(since "$t0")
  [ "$tool" = gsbuild ] && cp "$log" "$sdir/logs/$tag-target.log"
  echo "$scenario,$round,$tool,$tool_s,$rss,$bytes,$check_s,ok,$caught_s,$move,$bw,$wall" >>"$results/runs.csv"
  say "$tag: ${tool_s} s, caught-up standby at ${caught_s} s, peak RSS $((rss / 1024)) MiB, fetched $(human "$bytes"); check passed: standby caught up with identical data (${check_s} s)"
}

# gsbuild's dry run (-n: connect, both listings, the divergence and target WAL scan, the plan)
# on a fresh copy of the target; appends a line to runs.csv (tool gsbuild-dry-run).
run_dry() { # ROUND
  local round=$1 tag="$scenario-r$1-gsbuild-dry-run" t="$sdir/data/target" t0 tool_s wall rss
  restore_target
  t0=$EPOCHREALTIME
  as_pg /usr/bin/time -v -o "$sdir/logs/$tag.time" \
    "$gsbuild" -n -D "$t" --source-server "$src_conn" --format json \
    >"$sdir/logs/$tag.out" 2>"$sdir/logs/$tag.err" \
    || { tail -20 "$sdir/logs/$tag.err" >&2; die "$tag: the dry run failed"; }
  tool_s=$(since "$t0")
  read -r wall rss < <(time_report "$sdir/logs/$tag.time")
  echo "$scenario,$round,gsbuild-dry-run,$tool_s,$rss,0,0,n/a,,,,$wall" >>"$results/runs.csv"
  say "$tag: ${tool_s} s (listings, WAL scan and plan), peak RSS $((rss / 1024)) MiB"
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

def spread(xs):
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}–{max(xs):.2f})"

def ratios(a, b):
    """Median of the per-round ratios a/b (the alternating runs), with their range."""
    rs = [x / y for x, y in zip(a, b) if y > 0]
    if not rs:
        return "–"
    med = statistics.median(rs)
    return f"{med:.1f}× ({min(rs):.1f}–{max(rs):.1f})" if len(rs) > 1 else f"{med:.1f}×"

cols = ["scenario", "target", "pre-split WAL at source", "pg_rewind wall", "gsbuild wall",
        "pg_rewind / gsbuild", "pg_rewind to caught-up standby", "gsbuild to caught-up standby",
        "pg_rewind / gsbuild, caught-up", "must move", "disk write (dd, fsync)",
        "physical limit", "gsbuild / limit", "gsbuild dry run (listings + plan)",
        "pg_rewind / dry run", "pg_rewind peak RSS", "gsbuild peak RSS", "pg_rewind fetched",
        "gsbuild fetched", "runs"]
print("| " + " | ".join(cols) + " |")
print("|" + " --- |" * len(cols))
for name, s in scen.items():
    by = {}
    for tool in ("pg_rewind", "gsbuild", "gsbuild-dry-run"):
        by[tool] = sorted((r for r in runs if r["scenario"] == name and r["tool"] == tool),
                          key=lambda r: int(r["round"]))
    a, b, d = by["pg_rewind"], by["gsbuild"], by["gsbuild-dry-run"]
    if not a or not b:
        sys.exit(f"no runs for {name}")
    f = lambda rs, k: [float(r[k]) for r in rs]
    move = [int(r["must_move_bytes"]) for r in b]
    bw = [int(r["write_bw_bytes_per_s"]) for r in b]
    limit = [m / w for m, w in zip(move, bw)]
    cells = [
        f"{name} (scale {s['scale']}, {int(s['txns']):,} tx/side{s['extra']})",
        gib(s["target_bytes"]), gib(s["pre_split_wal_bytes"]),
        spread(f(a, "wall_s")), spread(f(b, "wall_s")), ratios(f(a, "wall_s"), f(b, "wall_s")),
        spread(f(a, "caught_up_s")), spread(f(b, "caught_up_s")),
        ratios(f(a, "caught_up_s"), f(b, "caught_up_s")),
        mib(statistics.median(move)), f"{statistics.median(bw) / 1e6:,.0f} MB/s",
        f"{statistics.median(limit):.2f} s", ratios(f(b, "wall_s"), limit),
        spread(f(d, "wall_s")) if d else "–",
        ratios(f(a, "wall_s"), f(d, "wall_s")) if d else "–",
        mib(statistics.median(int(r["max_rss_kib"]) * 1024 for r in a)),
        mib(statistics.median(int(r["max_rss_kib"]) * 1024 for r in b)),
        mib(statistics.median(int(r["bytes_fetched"]) for r in a)),
        mib(statistics.median(int(r["bytes_fetched"]) for r in b)),
        f"{len(a)} + {len(b)}" + (f" + {len(d)}" if d else ""),
    ]
    print("| " + " | ".join(cells) + " |")
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
echo "scenario,round,tool,wall_s,max_rss_kib,bytes_fetched,check_s,check,caught_up_s,must_move_bytes,write_bw_bytes_per_s,time_wall_s" \
  | as_pg tee "$results/runs.csv" >/dev/null
echo "scenario,scale,txns,target_bytes,source_pg_wal_bytes,pre_split_wal_bytes,divergence_lsn,setup_s,runs_s,total_s,extra" \
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
    bw=$(write_bandwidth)
    say "$scenario-r$r: durable write bandwidth $((bw / 1000000)) MB/s (dd of $dd_mib MiB, conv=fsync)"
    run_one "$r" pg_rewind "$bw"
    run_one "$r" gsbuild "$bw"
    if [ "$dry_run" = 1 ]; then run_dry "$r"; fi
  done
  pg_stop "$sdir/data/source"
  net_down
  total_s=$((SECONDS - start))
  scen_extra=''
  if [ -n "$link" ]; then scen_extra="; ${link% *} each way and ${link#* } ms round trip"; fi
  if [ "$tables" -gt 0 ]; then scen_extra="; $((tables * 4)) relation files"; fi
  if [ "$late_standby" = 1 ]; then scen_extra="; no older WAL on the source"; fi
  echo "$scenario,$scale,$txns,$target_bytes,$source_wal_bytes,$pre_split_bytes,$divergence,$setup_s,$((total_s - setup_s)),$total_s,$scen_extra" >>"$results/scenarios.csv"
  say "$scenario: done in ${total_s} s (pair ${setup_s} s, runs and checks $((total_s - setup_s)) s)"
  [ "$keep" = 0 ] && rm -rf "$sdir/data"
  current_scenario_dir=
done
make_table | as_pg tee "$results/table.md"
say "results: $results (table.md, runs.csv, scenarios.csv, machine.txt)"
