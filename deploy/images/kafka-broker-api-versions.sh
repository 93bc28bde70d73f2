#!/bin/bash
# Health check: one ApiVersions round trip (what the official script does, without a JVM):
#   kafka-broker-api-versions.sh --bootstrap-server HOST:PORT
# Exit 0 when the broker answers with error code 0.
set -euo pipefail
[ "${1:-}" = "--bootstrap-server" ] && [ -n "${2:-}" ] || {
  echo "usage: $0 --bootstrap-server HOST:PORT" >&2
  exit 2
}
server="${2%%,*}"
host="${server%:*}"
port="${server##*:}"
exec 3<>"/dev/tcp/$host/$port"
# size 12 | api_key 18 (ApiVersions) | version 0 | correlation id 1 | client id "hc"
printf '\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02hc' >&3
reply=$(timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
# size (4 bytes) | correlation id 1 | error code 0
[ "${reply:8:12}" = "000000010000" ] || {
  echo "no ApiVersions answer from $server (got '${reply}')" >&2
  exit 1
}
echo "$server: ApiVersions ok"
