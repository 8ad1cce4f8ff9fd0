#!/bin/bash
# down.sh - stop what up.sh started, using only the PIDs saved in /tmp/minios/pids
#           (plus the child processes of those PIDs, looked up before the parent is signalled).
# Usage: ./down.sh            stop everything, keep state (./up.sh restarts it)
#        ./down.sh --purge    also delete venv, configs, databases, logs (keeps up.sh, down.sh,
#                             constraints.txt, evidence/) so the next ./up.sh starts from scratch
B=${OPSCTL_TESTBED:-/tmp/minios}
P=$B/pids
desc() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; desc "$c"; done; }
running() { [ -e /proc/$1 ] && [ "$(awk '{print $3}' /proc/$1/stat 2>/dev/null)" != Z ]; }  # zombies count as gone
ours() { ps -o args= -p "$1" 2>/dev/null | grep -qE "$B|"'gunicorn|nova-|neutron-|cinder-|erl|beam|inet_gethost|rabbit'; }
stop() { # pidfile-name [grace seconds]
  local f=$P/$1.pid grace=${2:-15} pid kids i k t0=$EPOCHREALTIME
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && running "$pid"; then
    kids=$(desc "$pid")
    kill -TERM "$pid"
    for i in $(seq 1 $((grace * 4))); do running "$pid" || break; sleep 0.25; done
    running "$pid" && { echo "  $1: pid $pid ignored TERM, sending KILL"; kill -KILL "$pid"; }
    for i in $(seq 1 20); do
      local left=""; for k in $kids; do running "$k" && left="$left $k"; done
      [ -z "$left" ] && break; sleep 0.25
    done
    for k in $kids; do running "$k" && ours "$k" && kill -KILL "$k"; done
    echo "stopped $1 (pid $pid${kids:+; children $(echo $kids)}) in $(awk -v a=$t0 -v b=$EPOCHREALTIME 'BEGIN{printf "%.1f", b-a}')s"
  fi
  rm -f "$f"
}
# OpenStack services: stop them all in parallel (each: TERM, wait up to 15 s, then KILL)
for f in "$P"/*.pid; do
  [ -e "$f" ] || continue
  n=$(basename "$f" .pid)
  case $n in rabbitmq|rabbitmq.beam|epmd|mysqld) ;; *) stop "$n" & ;; esac
done
wait
if [ -f $P/rabbitmq.beam.pid ] && kill -0 "$(cat $P/rabbitmq.beam.pid)" 2>/dev/null; then
  ( . $B/etc/rabbitmq/env.sh; /usr/lib/rabbitmq/bin/rabbitmqctl stop $P/rabbitmq.beam.pid >/dev/null 2>&1 ) \
    && echo "stopped rabbitmq (rabbitmqctl stop)"
fi
stop rabbitmq.beam; stop rabbitmq; stop epmd
stop mysqld 60
if [ "${1:-}" = "--purge" ]; then
  rm -rf $B/venv $B/etc $B/data $B/logs $B/pids $B/run $B/wsgi $B/bin
  echo "purged state under $B (kept up.sh, down.sh, constraints.txt, evidence/)"
fi
