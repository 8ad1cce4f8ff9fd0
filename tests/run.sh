#!/usr/bin/env bash
# The test command: install every Debian and Python package the tests need, start the real
# OpenStack testbed (tests/testbed/up.sh), then run the whole suite. Extra args go to pytest.
#   OPSCTL_SKIP_E2E=1 tests/run.sh    run without the testbed (e2e tests are then skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PYTHONWARNINGS=ignore
T0=$SECONDS
log() { echo "[run.sh $((SECONDS - T0))s] $*"; }

PKGS=(mariadb-server mariadb-client mariadb-backup rabbitmq-server openssh-server openssh-client
      prometheus memcached iproute2 curl procps zstd pigz ca-certificates chrony galera-4 rsync sudo
      uwsgi-core uwsgi-plugin-python3 systemd python3-oslo.log python3-systemd)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep apt from starting system-wide daemons
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

testbed_pid=
if [ "${OPSCTL_SKIP_E2E:-0}" != 1 ]; then
  log "starting the OpenStack testbed in the background (log: /tmp/opsctl-testbed-up.log)"
  bash tests/testbed/up.sh > /tmp/opsctl-testbed-up.log 2>&1 &
  testbed_pid=$!
fi

log "pip install -e .[test]"
python3 -m pip install -q -e ".[test]" 2>&1 | grep -v -E '^WARNING: (Location|Running pip as)' || true

if [ -n "$testbed_pid" ]; then
  if ! wait "$testbed_pid"; then
    tail -40 /tmp/opsctl-testbed-up.log
    echo "error: the OpenStack testbed did not come up" >&2
    exit 1
  fi
  log "testbed up: $(grep -c . /tmp/opsctl-testbed-up.log) log lines"
fi

log "pytest"
python3 -m pytest -q -p no:cacheprovider tests "$@"
