#!/usr/bin/env bash
# Try the 3-node cluster of restate.toml on one machine: each node on loopback with its own
# ports, base dir, log and process group, run from the binary `restate-stream stack install`
# put in the cache.
#
#   deploy/restate-cluster/run-local.sh [start|stop|status]     (default: start)
#   deploy/restate-cluster/run-local.sh kill-node N | start-node N   (one node: a crash, a rejoin)
#
# Recorded pids are not trusted alone: a pid is signalled only while its start time is the
# recorded one and /proc/<pid>/cmdline still passes that node's base dir as --base-dir (a pid
# file left by a crash may name a recycled pid).
#
# Settings (environment):
#   CLUSTER_HOME   data, logs and pids       (default: ~/.cache/restate-stream/cluster)
#   SERVER_BIN     restate-server binary     (default: the one restate-stream installed)
#   FABRIC_PORTS / ADMIN_PORTS / INGRESS_PORTS   three ports each, node 1 first
#                  (default: "5122 25122 35122" / "9070 29070 39070" / "8080 28080 38080")
# Not named RESTATE_*: restate-server reads every RESTATE_* variable as configuration.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
home=${CLUSTER_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/restate-stream/cluster}
read -r -a fabric <<<"${FABRIC_PORTS:-5122 25122 35122}"
read -r -a admin <<<"${ADMIN_PORTS:-9070 29070 39070}"
read -r -a ingress <<<"${INGRESS_PORTS:-8080 28080 38080}"
nodes=(1 2 3)

die() { echo "run-local: $*" >&2; exit 1; }

server_bin() {
  if [[ -n "${SERVER_BIN:-}" ]]; then echo "$SERVER_BIN"; return; fi
  local python=python3
  [[ -x "$repo/.venv/bin/python" ]] && python="$repo/.venv/bin/python"
  "$python" -c 'from restate_stream.stack.install import restate_install as r; print(r().binary)'
}

# A pid file holds "pid start-time"; the start time (field 22 of /proc/<pid>/stat, clock ticks
# since boot) tells the process we started from a later one given the same pid.
recorded_pid() { local pid _; read -r pid _ <"$home/node-$1/pid" 2>/dev/null || true; echo "${pid:-}"; }
recorded_start() { local _ start; read -r _ start <"$home/node-$1/pid" 2>/dev/null || true; echo "${start:-}"; }
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # The command name (field 2) may hold spaces and ")": fields 3.. follow the last ") ".
  # shellcheck disable=SC2086  # split into fields on purpose
  set -- ${stat##*) }
  echo "${20}"
}
# The recorded pid of node $1 if that process is still node $1's server, else nothing: the
# recorded start time (older pid files have none) and `--base-dir <node dir>/data` as two
# whole arguments (not the path anywhere in the command line: `tail -f` of a log names it too).
pid_of() {
  local pid start
  pid=$(recorded_pid "$1") start=$(recorded_start "$1")
  [[ -n "$pid" ]] || return 0
  [[ -z "$start" || "$(start_time "$pid")" == "$start" ]] || return 0
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null \
    | awk -v dir="$home/node-$1/data" 'prev == "--base-dir" && $0 == dir { found = 1 } { prev = $0 }
        END { exit !found }' \
    && echo "$pid"
  return 0
}
alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
answers() { curl -sf -o /dev/null --max-time 1 "$1"; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# restate-server asks api.github.com for its latest release on every start, with no setting to
# stop it (restate_stream/stack/offline.py). Each node runs in a private mount namespace whose
# /etc/hosts maps the GitHub API to 127.0.0.1, so the check stays on loopback; the network is
# the host's. Empty where namespaces are not allowed: the nodes then start without it.
offline_prefix=()
setup_offline() {
  local hosts="$home/hosts" user=()
  mkdir -p "$home"
  { echo "127.0.0.1 api.github.com"; echo "127.0.0.1 uploads.github.com"; cat /etc/hosts; } >"$hosts"
  [[ $(id -u) == 0 ]] || user=(--user --map-root-user)
  local prefix=(unshare "${user[@]}" --mount -- /bin/sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$hosts")
  if command -v unshare >/dev/null \
    && "${prefix[@]}" grep -qF "127.0.0.1 api.github.com" /etc/hosts 2>/dev/null; then
    offline_prefix=("${prefix[@]}")
  else
    echo "run-local: warning: no private /etc/hosts here (unshare --mount failed): the nodes" \
      "will try to reach api.github.com:443 for their release check" >&2
  fi
}

start_node() {
  local i=$1 n=$(($1 - 1)) bin=$2 addresses=$3 dir="$home/node-$1"
  mkdir -p "$dir"
  (
    set -a
    # shellcheck disable=SC1090  # node name, id, auto-provision; the address is replaced below
    . "$here/node-$i.env"
    set +a
    export RESTATE_BIND_IP=127.0.0.1 RESTATE_LISTEN_MODE=tcp \
      RESTATE_BIND_PORT="${fabric[n]}" \
      RESTATE_ADMIN__BIND_PORT="${admin[n]}" \
      RESTATE_INGRESS__BIND_PORT="${ingress[n]}" \
      RESTATE_ADVERTISED_ADDRESS="http://127.0.0.1:${fabric[n]}/" \
      RESTATE_METADATA_CLIENT__ADDRESSES="$addresses" \
      RESTATE_LOG_DISABLE_ANSI_CODES=true RESTATE_DISABLE_TELEMETRY=true
    # The release check's refused connection to 127.0.0.1:443 is expected: no ERROR line.
    ((${#offline_prefix[@]} == 0)) || export RESTATE_LOG_FILTER=warn,restate=info,octocrab=off
    # Not a job-control shell, so the child is no group leader and setsid needs no fork; unshare
    # and sh exec too: $! is the server's pid and the id of its new process group.
    setsid "${offline_prefix[@]}" "$bin" --no-logo --config-file "$here/restate.toml" --base-dir "$dir/data" \
      >>"$dir/restate.log" 2>&1 </dev/null &
    echo "$! $(start_time $!)" >"$dir/pid"
  )
}

metadata_addresses() {
  local i addresses="["
  for i in "${nodes[@]}"; do addresses+="\"http://127.0.0.1:${fabric[i - 1]}/\","; done
  echo "${addresses%,}]"
}

wait_healthy() {  # node, deadline (in $SECONDS)
  local i=$1 deadline=$2 pid
  pid=$(pid_of "$i")
  until answers "http://127.0.0.1:${admin[i - 1]}/health" \
    && answers "http://127.0.0.1:${ingress[i - 1]}/restate/health"; do
    if ! alive "$pid"; then
      tail -n 30 "$home/node-$i/restate.log" >&2
      return 1
    fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

cmd_start() {
  command -v curl >/dev/null || die "curl is needed to wait for the nodes"
  local bin i pid
  bin=$(server_bin) || die "no restate-server: run \`restate-stream stack install\` or set SERVER_BIN"
  [[ -x "$bin" ]] || die "$bin is missing: run \`restate-stream stack install\` or set SERVER_BIN"
  for i in "${nodes[@]}"; do
    alive "$(pid_of "$i")" && die "node $i already runs (pid $(pid_of "$i")): \`$0 stop\` first"
  done
  for port in "${fabric[@]}" "${admin[@]}" "${ingress[@]}"; do
    port_taken "$port" && die "port $port on 127.0.0.1 is in use; choose others (see the header)"
  done
  setup_offline
  for i in "${nodes[@]}"; do start_node "$i" "$bin" "$(metadata_addresses)"; done
  echo "run-local: started 3 nodes from $bin; data and logs under $home"

  local deadline=$((SECONDS + 90))
  for i in "${nodes[@]}"; do
    if ! wait_healthy "$i" "$deadline"; then
      cmd_stop
      die "node $i exited or was not healthy within 90s; log: $home/node-$i/restate.log"
    fi
  done
  for i in "${nodes[@]}"; do
    echo "node $i: admin http://127.0.0.1:${admin[i - 1]}  ingress" \
      "http://127.0.0.1:${ingress[i - 1]}  fabric ${fabric[i - 1]}  pid $(pid_of "$i")"
  done
  echo "cluster: $(curl -sf "http://127.0.0.1:${admin[0]}/cluster-health")"
  echo "run-local: \`$0 stop\` stops all three"
}

cmd_stop() {
  local i pid t
  for i in "${nodes[@]}"; do
    pid=$(pid_of "$i")
    alive "$pid" && kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for i in "${nodes[@]}"; do
    for ((t = 0; t < 100; t++)); do [[ -n "$(pid_of "$i")" ]] || break; sleep 0.2; done
    pid=$(pid_of "$i")
    if [[ -n "$pid" ]]; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    rm -f "$home/node-$i/pid"
  done
  echo "run-local: stopped"
}

cmd_status() {
  local i pid code=0
  for i in "${nodes[@]}"; do
    pid=$(pid_of "$i")
    if ! alive "$pid"; then
      if [[ -n "$(recorded_pid "$i")" ]]; then
        echo "node $i: down (stale pid file: pid $(recorded_pid "$i") is not this node)"
      else
        echo "node $i: down"
      fi
      code=1
    elif answers "http://127.0.0.1:${admin[i - 1]}/health"; then
      echo "node $i: healthy (pid $pid, admin ${admin[i - 1]})"
    else
      echo "node $i: running, admin not answering (pid $pid)"; code=1
    fi
  done
  return $code
}

node_arg() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "which node? expected 1, 2 or 3, got '${1:-}'"
}

cmd_kill_node() {  # SIGKILL: a crash, for trying failover
  node_arg "${1:-}"
  local pid
  pid=$(pid_of "$1")
  [[ -n "$pid" ]] || die "node $1 is not running"
  kill -KILL -- "-$pid"
  rm -f "$home/node-$1/pid"
  echo "run-local: node $1 killed (pid $pid)"
}

cmd_start_node() {  # one node back into the running cluster, same ports and data
  node_arg "${1:-}"
  local bin
  [[ -z "$(pid_of "$1")" ]] || die "node $1 already runs (pid $(pid_of "$1"))"
  bin=$(server_bin) || die "no restate-server: run \`restate-stream stack install\` or set SERVER_BIN"
  setup_offline
  start_node "$1" "$bin" "$(metadata_addresses)"
  wait_healthy "$1" $((SECONDS + 90)) || die "node $1 not healthy within 90s; log: $home/node-$1/restate.log"
  echo "run-local: node $1 healthy (pid $(pid_of "$1"))"
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill-node) cmd_kill_node "${2:-}" ;;
  start-node) cmd_start_node "${2:-}" ;;
  *) die "usage: $0 [start|stop|status|kill-node N|start-node N]" ;;
esac
