#!/usr/bin/env bash
# Checks systemd/cfgroups.service offline, alone and with each drop-in of
# systemd/cfgroups.service.d/ applied:
# - `systemd-analyze verify` prints nothing (no unknown keys, bad values or missing commands);
# - `systemd-analyze security` rates its exposure 2.0 or better ("OK").
# Installs Debian's systemd package when systemd-analyze is missing. Usage:
#   systemd/check.sh [UNIT]            MAX_EXPOSURE=2.0 by default
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
unit="${1:-$here/cfgroups.service}"
max_exposure="${MAX_EXPOSURE:-2.0}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# verify insists that ExecStart's program exists. The unit names the installed path, so
# check a copy whose ExecStart points at a binary that is here: the one cargo built when
# there is one, else /bin/true. Nothing is run.
bin=/bin/true
for candidate in "$here/../target/release/cfgroups" "$here/../target/debug/cfgroups"; do
  if [ -x "$candidate" ]; then
    bin="$(cd "$(dirname "$candidate")" && pwd)/cfgroups"
    break
  fi
done
copy="$tmp/cfgroups.service"
sed "s|^ExecStart=/usr/local/bin/cfgroups |ExecStart=$bin |" "$unit" >"$copy"
if ! grep -q "^ExecStart=$bin " "$copy"; then
  echo "check.sh: no 'ExecStart=/usr/local/bin/cfgroups ...' line in $unit" >&2
  exit 1
fi

status=0

# verify exits 0 on warnings such as unknown keys, so any output at all is a failure.
verify_out="$(systemd-analyze verify "$copy" 2>&1)" || status=1
if [ -n "$verify_out" ]; then
  echo "systemd-analyze verify:" >&2
  echo "$verify_out" >&2
  status=1
else
  echo "systemd-analyze verify: clean"
fi

security_out="$(systemd-analyze security --offline=yes "$copy" 2>&1)" || true
exposure="$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' <<<"$security_out")"
if [ -z "$exposure" ]; then
  echo "systemd-analyze security printed no exposure level:" >&2
  echo "$security_out" >&2
  exit 1
fi
# Warnings from parsing the unit show up before the table.
parse_warnings="$(grep -E "^$copy:[0-9]+:" <<<"$security_out" || true)"
if [ -n "$parse_warnings" ]; then
  echo "systemd-analyze security:" >&2
  echo "$parse_warnings" >&2
  status=1
fi
if awk -v got="$exposure" -v max="$max_exposure" 'BEGIN { exit !(got + 0 > max + 0) }'; then
  echo "systemd-analyze security: exposure $exposure is worse than $max_exposure" >&2
  grep '✗' <<<"$security_out" >&2 || true
  status=1
else
  echo "systemd-analyze security: exposure $exposure (at most $max_exposure)"
fi

# Each drop-in, applied the way systemd merges it (its lines appended to the unit's
# sections), must verify as cleanly and keep the exposure rating.
for dropin in "$here"/cfgroups.service.d/*.conf; do
  [ -e "$dropin" ] || continue
  merged="$tmp/merged/cfgroups.service"
  mkdir -p "$tmp/merged"
  cp "$copy" "$merged"
  # A drop-in's [Service] lines go at the end of the unit's [Service] section, which is
  # followed by [Install]: insert them just before it.
  awk -v dropin="$dropin" '
    /^\[Install\]/ && !done {
      while ((getline line < dropin) > 0) if (line !~ /^\[Service\]/) print line
      done = 1
    }
    { print }
  ' "$merged" >"$merged.new"
  mv "$merged.new" "$merged"
  name="$(basename "$dropin")"
  out="$(systemd-analyze verify "$merged" 2>&1)" || status=1
  if [ -n "$out" ]; then
    echo "systemd-analyze verify with $name:" >&2
    echo "$out" >&2
    status=1
  else
    echo "systemd-analyze verify with $name: clean"
  fi
  sec="$(systemd-analyze security --offline=yes "$merged" 2>&1)" || true
  level="$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' <<<"$sec")"
  if [ -z "$level" ] || awk -v got="$level" -v max="$max_exposure" 'BEGIN { exit !(got + 0 > max + 0) }'; then
    echo "systemd-analyze security with $name: exposure ${level:-unknown} is worse than $max_exposure" >&2
    status=1
  else
    echo "systemd-analyze security with $name: exposure $level (at most $max_exposure)"
  fi
done

exit "$status"
