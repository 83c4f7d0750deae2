#!/usr/bin/env bash
# Fetches Debian's Mosquitto package (and the libraries it needs that the system lacks) into a per-user cache and
# unpacks it there, without installing anything system-wide and without root: `apt-get download` + `dpkg-deb -x`.
# Prints two lines on success:  BIN=<path to mosquitto>  LIB=<LD_LIBRARY_PATH for it>.
# Cache: ${KEDGE_BENCH_CACHE:-$XDG_CACHE_HOME/kedge-bench or ~/.cache/kedge-bench}/mosquitto-<version>/ (reused).
set -euo pipefail

die() { echo "mosquitto.sh: $*" >&2; exit 1; }
command -v apt-get >/dev/null && command -v apt-cache >/dev/null && command -v dpkg-deb >/dev/null ||
  die "needs apt-get, apt-cache and dpkg-deb (a Debian/Ubuntu machine) to fetch Debian's mosquitto package"

version=$(apt-cache policy mosquitto 2>/dev/null | awk '/Candidate:/ { print $2 }')
[[ -n "$version" && "$version" != "(none)" ]] ||
  die "apt knows no mosquitto package (run 'apt-get update' once, as an administrator, or check /etc/apt/sources.list)"

cache=${KEDGE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kedge-bench}
dir="$cache/mosquitto-${version//[^A-Za-z0-9.+-]/_}"
root="$dir/root"
bin="$root/usr/sbin/mosquitto"
libdirs() { find "$root" -name '*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -; }

if [[ ! -x "$bin" ]]; then
  mkdir -p "$dir/debs"
  # The package and those of its direct dependencies that are libraries not installed here.
  pkgs=(mosquitto)
  while read -r dep; do
    [[ "$dep" == lib* ]] || continue
    status=$(dpkg-query -W -f='${Status}' "$dep" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || pkgs+=("$dep")
  done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances mosquitto 2>/dev/null |
    awk '$1 == "Depends:" { print $2 }' | tr -d '<>')
  echo "mosquitto.sh: fetching ${pkgs[*]} ($version) into $dir" >&2
  (cd "$dir/debs" && apt-get download "${pkgs[@]}" >&2) || die "apt-get download ${pkgs[*]} failed (is the Debian mirror reachable?)"
  rm -rf "$root.tmp"
  mkdir -p "$root.tmp"
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$root.tmp" || die "dpkg-deb -x $deb failed"; done
  rm -rf "$root"
  mv "$root.tmp" "$root"
fi

[[ -x "$bin" ]] || die "no mosquitto binary in $root after unpacking"
lib=$(libdirs)
missing=$(LD_LIBRARY_PATH="$lib" ldd "$bin" 2>/dev/null | awk '/not found/ { print $1 }' | paste -sd' ' -)
[[ -z "$missing" ]] || die "mosquitto needs libraries that are neither installed nor fetched: $missing"
# `mosquitto -h` prints its version and exits non-zero.
help=$(LD_LIBRARY_PATH="$lib" "$bin" -h 2>&1 || true)
[[ "$help" == *"mosquitto version"* ]] || die "$bin does not run: ${help:0:200}"
echo "BIN=$bin"
echo "LIB=$lib"
