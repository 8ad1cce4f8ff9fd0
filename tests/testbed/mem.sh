#!/bin/bash
# Memory of everything started by up.sh: processes in /tmp/minios/pids/*.pid, their descendants,
# and the epmd up.sh recorded. Prints per-process RSS/PSS and totals (PSS = fair share of shared pages).
cd ${OPSCTL_TESTBED:-/tmp/minios}/pids || exit 1
declare -A seen
descend() { local p=$1; seen[$p]=1; for c in $(ps -o pid= --ppid $p); do descend $c; done; }
for f in *.pid; do p=$(cat $f 2>/dev/null); [ -n "$p" ] && kill -0 $p 2>/dev/null && descend $p; done
printf "%-8s %8s %8s  %s\n" PID RSS_MB PSS_MB CMD
for p in "${!seen[@]}"; do
  [ -r /proc/$p/smaps_rollup ] || continue
  r=$(awk '/^Rss:/{print $2}' /proc/$p/smaps_rollup); s=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup)
  printf "%-8s %8d %8d  %s\n" $p $((r/1024)) $((s/1024)) "$(ps -o args= -p $p | cut -c1-80)"
done | sort -k2 -n -r
for p in "${!seen[@]}"; do [ -r /proc/$p/smaps_rollup ] && awk '/^Rss:/{r=$2} /^Pss:/{s=$2} END{print r, s}' /proc/$p/smaps_rollup; done |
  awk '{r+=$1; s+=$2; n++} END{printf "TOTAL processes=%d RSS=%.0f MiB PSS=%.0f MiB\n", n, r/1024, s/1024}'
