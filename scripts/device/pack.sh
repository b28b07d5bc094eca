#!/usr/bin/env bash
# Run HERE (the CPU dev machine): gathers what the device machine lacks into the
# git-ignored folder .carry/ (named in the device tool's `carry`):
#   .carry/debs/*.deb      header/library packages from Debian (the device has no registry)
#   .carry/data/           token shards or corpora a device run needs (optional, by caller)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .carry/debs
pkgs=(nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
      libtomlplusplus-dev libtomlplusplus3 libgtest-dev libgloo-dev libgloo0 libicu-dev libicu72)
cd .carry/debs
for p in "${pkgs[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 || echo "warn: could not download $p"
done
du -sh . | sed 's/^/carry size: /'
