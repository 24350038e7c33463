#!/usr/bin/env bash
# Builds the Debian package with `cargo deb` (installed here when missing), installs it, and
# checks the installed tool: `gsbuild --version`, `--help`, its manual page and completions,
# and the demo (a throwaway diverged pair rebuilt and verified) run with /usr/bin/gsbuild.
#
#   bash .ci/package-deb.sh            # build, install, check (needs root for dpkg -i)
#   bash .ci/package-deb.sh --build    # build target/debian/gsbuild_*.deb only
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
[ "${1:-}" = "--build" ] && build_only=true

if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked --quiet
fi
cargo build --release --locked
# The manual page and completions come from the command line's own definitions.
mkdir -p target/assets
target/release/gsbuild manpage | gzip -9n > target/assets/gsbuild.1.gz
target/release/gsbuild completions bash > target/assets/gsbuild.bash
target/release/gsbuild completions zsh > target/assets/_gsbuild
target/release/gsbuild completions fish > target/assets/gsbuild.fish
deb=$(cargo deb --no-build --locked | tail -n 1)
echo "== built $deb ($(du -h "$deb" | cut -f1))"
$build_only && exit 0

dpkg -i "$deb"
echo "== installed: $(dpkg-query -W -f='${Package} ${Version}' gsbuild)"
/usr/bin/gsbuild --version
/usr/bin/gsbuild --help >/dev/null
man -l /usr/share/man/man1/gsbuild.1.gz >/dev/null 2>&1 || zcat /usr/share/man/man1/gsbuild.1.gz | grep -q '^.TH gsbuild 1'
bash -c 'source /usr/share/bash-completion/completions/gsbuild && complete -p gsbuild' >/dev/null
if [ -e /usr/bin/pg_rewind ] && [ "$(readlink -f /usr/bin/pg_rewind)" = /usr/bin/gsbuild ]; then
    echo "the package must not install pg_rewind" >&2
    exit 1
fi
echo "== the demo, with the installed binary"
/usr/bin/gsbuild demo
dpkg -r gsbuild >/dev/null
