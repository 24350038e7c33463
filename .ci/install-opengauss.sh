#!/usr/bin/env bash
# Installs the openGauss server the openGauss tests run against (7.0.0-RC2, built for this
# machine's Debian 12), from the distribution directory CI machines carry beside the project
# (GSBUILD_OG_DIST, default ../shared/opengauss relative to the repository), under
# GSBUILD_OG_HOME (default /opt/opengauss-7.0.0-RC2), and creates the unprivileged user the
# servers run as (openGauss refuses root). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${GSBUILD_OG_DIST:-$(cd .. && pwd)/shared/opengauss}
home=${GSBUILD_OG_HOME:-/opt/opengauss-7.0.0-RC2}
if [ ! -x "$home/bin/gaussdb" ]; then
  [ -f "$dist/install.sh" ] || { echo "install-opengauss: no openGauss distribution at $dist" >&2; exit 1; }
  command -v zstd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd >/dev/null; }
  bash "$dist/install.sh" "$home"
fi
id omm >/dev/null 2>&1 || useradd -m -s /bin/bash omm
chmod -R a+rX "$home"
"$home/bin/gaussdb" --version 2>/dev/null || LD_LIBRARY_PATH="$home/lib" "$home/bin/gaussdb" --version
