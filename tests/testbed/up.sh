#!/bin/bash
# up.sh - a small but REAL OpenStack control plane on 127.0.0.1 (no hypervisor)
#   Keystone, Placement, Glance (file store), Nova (api/conductor/scheduler/compute with
#   fake.FakeDriverWithoutFakeNodes), Neutron (api/rpc-server/periodic-workers, ML2 + openvswitch
#   mech driver, heart-beating fake agents), Cinder (api/scheduler/volume with the fake driver),
#   MariaDB and RabbitMQ.
# Everything lives under $OPSCTL_TESTBED (default /tmp/minios); every listener binds 127.0.0.1; PIDs go to /tmp/minios/pids.
# Needs root (apt-get install of mariadb-server/rabbitmq-server on first run), PyPI and Debian mirrors.
# Usage: ./up.sh            (idempotent: re-running skips finished steps and running services)
#        SKIP_SMOKE=1 ./up.sh
set -euo pipefail
B=${OPSCTL_TESTBED:-/tmp/minios}
HERE=$(cd "$(dirname "$0")" && pwd)
V=$B/venv
PY=${PYTHON:-python3}
PW=secret
export PYTHONWARNINGS=ignore
T0=$EPOCHREALTIME
ts() { awk -v a="$T0" -v b="$EPOCHREALTIME" -v m="$*" 'BEGIN{printf "[%7.1fs] %s\n", b-a, m}'; }
mkdir -p $B/{etc,data,logs,pids,run,wsgi,bin}
chmod 755 $B $B/data $B/logs $B/pids $B/run

# once NAME cmd...: run a setup step; with OPSCTL_TESTBED_FAST=1 (restarting dead daemons of a bed
# that was fully set up before) skip steps that already succeeded once.
once() { local n=$1; shift
  if [ "${OPSCTL_TESTBED_FAST:-0}" = 1 ] && [ -f $B/data/.once-$n ]; then return 0; fi
  "$@" && touch $B/data/.once-$n; }
cpn() { [ -e "$2/$(basename "$1")" ] || cp "$1" "$2/"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_http() { # url seconds
  local i; for i in $(seq 1 $(( $2 * 4 ))); do curl -m 5 -s -o /dev/null "$1" && return 0; sleep 0.25; done
  echo "TIMEOUT waiting for $1" >&2; return 1; }
daemon() { # name logfile cmd... (start in background, pid in pids/name.pid, skip if alive)
  local name=$1 out=$2; shift 2
  if alive $B/pids/$name.pid; then echo "  $name already running (pid $(cat $B/pids/$name.pid))"; return 0; fi
  start-stop-daemon --start --background --make-pidfile --pidfile $B/pids/$name.pid \
    --output "$out" --chdir $B/wsgi --exec "$1" -- "${@:2}"
}
wsgi() { # name port workers module [extra gunicorn args]
  local name=$1 port=$2 workers=$3 module=$4; shift 4
  mkdir -p $B/logs/gunicorn
  daemon $name $B/logs/gunicorn/$name.out $V/bin/gunicorn --no-control-socket \
    --bind 127.0.0.1:$port --workers $workers --timeout 120 --name $name "$@" $module:application
}

# ---------------------------------------------------------------- 1. system packages
if ! command -v mariadbd >/dev/null || [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || ! command -v curl >/dev/null; then
  ts "apt-get install mariadb-server rabbitmq-server"
  apt-get update -q
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep apt from starting the system-wide daemons
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    mariadb-server rabbitmq-server curl > $B/logs/apt-install.out
  if [ $made_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

# ---------------------------------------------------------------- 2. python venv
if [ ! -x $V/bin/cinder-volume ]; then
  ts "creating venv + pip install (this is the slow part)"
  $PY -m venv $V || { apt-get install -y -q python3-venv; $PY -m venv $V; }
  $V/bin/pip install -q -U pip
  C=(); [ -f $HERE/constraints.txt ] && C=(-c $HERE/constraints.txt)
  $V/bin/pip install -q "${C[@]}" keystone openstack-placement glance nova neutron cinder \
    openstacksdk python-openstackclient gunicorn PyMySQL python-memcached
  ts "venv ready: $(du -sh $V | cut -f1)"
fi

# ---------------------------------------------------------------- 3. MariaDB
cat > $B/etc/my.cnf <<EOF
[mysqld]
user = mysql
datadir = $B/data/mysql
socket = $B/run/mysqld.sock
pid-file = $B/pids/mysqld.pid
log-error = $B/logs/mysqld.err
bind-address = 127.0.0.1
port = 3306
skip-name-resolve
innodb_buffer_pool_size = 128M
max_connections = 500
performance_schema = OFF
character-set-server = utf8mb4
collation-server = utf8mb4_general_ci
[client]
socket = $B/run/mysqld.sock
EOF
MY="mariadb --defaults-file=$B/etc/my.cnf -uroot"
chown mysql:mysql $B/run $B/pids $B/logs
if [ ! -d $B/data/mysql/mysql ]; then
  mkdir -p $B/data/mysql; chown mysql:mysql $B/data/mysql
  mariadb-install-db --defaults-file=$B/etc/my.cnf --auth-root-authentication-method=socket > $B/logs/mariadb-install-db.out 2>&1
fi
if ! mariadb-admin --defaults-file=$B/etc/my.cnf ping >/dev/null 2>&1; then
  ts "starting MariaDB"
  start-stop-daemon --start --background --pidfile $B/pids/mysqld.pid --exec /usr/sbin/mariadbd -- --defaults-file=$B/etc/my.cnf
  for i in $(seq 1 120); do mariadb-admin --defaults-file=$B/etc/my.cnf ping >/dev/null 2>&1 && break; sleep 0.25; done
fi
{ echo "CREATE USER IF NOT EXISTS 'os'@'127.0.0.1' IDENTIFIED BY '$PW';"
  echo "CREATE USER IF NOT EXISTS 'os'@'localhost' IDENTIFIED BY '$PW';"
  for db in keystone placement glance nova_api nova nova_cell0 neutron cinder; do
    echo "CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8mb4;"
    echo "GRANT ALL ON $db.* TO 'os'@'127.0.0.1'; GRANT ALL ON $db.* TO 'os'@'localhost';"
  done; } | $MY
ts "MariaDB up (pid $(cat $B/pids/mysqld.pid))"
DB="mysql+pymysql://os:$PW@127.0.0.1"

# ---------------------------------------------------------------- 4. RabbitMQ
mkdir -p $B/etc/rabbitmq $B/data/rabbitmq/home $B/logs/rabbitmq
echo '[].' > $B/etc/rabbitmq/enabled_plugins
printf 'listeners.tcp.default = 127.0.0.1:5672\nloopback_users.guest = true\n' > $B/etc/rabbitmq/rabbitmq.conf
cat > $B/etc/rabbitmq/env.sh <<EOF
export HOME=$B/data/rabbitmq/home
export RABBITMQ_NODENAME=rabbit@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=5672
export RABBITMQ_DIST_PORT=25672
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_CONFIG_FILE=$B/etc/rabbitmq/rabbitmq.conf
export RABBITMQ_ENABLED_PLUGINS_FILE=$B/etc/rabbitmq/enabled_plugins
export RABBITMQ_MNESIA_BASE=$B/data/rabbitmq/mnesia
export RABBITMQ_LOG_BASE=$B/logs/rabbitmq
export RABBITMQ_PID_FILE=$B/pids/rabbitmq.beam.pid
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
if ! alive $B/pids/rabbitmq.beam.pid; then
  ts "starting RabbitMQ"
  epmd_before=$(ss -ltnpH 'sport = :4369' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  ( . $B/etc/rabbitmq/env.sh
    start-stop-daemon --start --background --make-pidfile --pidfile $B/pids/rabbitmq.pid \
      --output $B/logs/rabbitmq/stdout.log --exec /usr/lib/rabbitmq/bin/rabbitmq-server
    sleep 1
    /usr/lib/rabbitmq/bin/rabbitmqctl wait --timeout 90 $B/pids/rabbitmq.beam.pid > $B/logs/rabbitmq/wait.out 2>&1 )
  if [ -z "$epmd_before" ]; then  # epmd was started by us: remember it so down.sh can stop it
    ss -ltnpH 'sport = :4369' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 > $B/pids/epmd.pid || true
  fi
fi
ts "RabbitMQ up (beam pid $(cat $B/pids/rabbitmq.beam.pid))"
RABBIT="rabbit://guest:guest@127.0.0.1:5672/"

authtoken() { # user
cat <<EOF
[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:5000/v3
auth_url = http://127.0.0.1:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $PW
memcached_servers =
EOF
}
svcauth() { # section user
cat <<EOF
[$1]
region_name = RegionOne
auth_url = http://127.0.0.1:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $PW
EOF
}
# WSGI wrappers: gunicorn's own argv would otherwise be parsed by oslo.config and rejected
for m in keystone:keystone.wsgi.api placement:placement.wsgi.api glance:glance.wsgi.api \
         nova:nova.wsgi.osapi_compute neutron:neutron.wsgi.api; do
  printf 'import sys\nsys.argv = sys.argv[:1]\nfrom %s import application  # noqa\n' "${m#*:}" > $B/wsgi/${m%%:*}_api.py
done
printf 'import sys\nsys.argv = [sys.argv[0], "--config-file", "%s", "--config-file", "%s"]\nfrom cinder.wsgi.api import application  # noqa\n' \
  $B/etc/cinder/cinder.conf $B/etc/cinder/cinder-api.conf > $B/wsgi/cinder_api.py

# ---------------------------------------------------------------- 5. Keystone
mkdir -p $B/etc/keystone/fernet-keys $B/etc/keystone/credential-keys $B/logs/keystone
cat > $B/etc/keystone/keystone.conf <<EOF
[DEFAULT]
log_dir = $B/logs/keystone
log_file = keystone.log
[database]
connection = $DB/keystone
[token]
provider = fernet
[fernet_tokens]
key_repository = $B/etc/keystone/fernet-keys
[credential]
key_repository = $B/etc/keystone/credential-keys
[cache]
enabled = False
EOF
if [ ! -f $B/data/.keystone-done ]; then
  ts "keystone db_sync/fernet_setup/bootstrap"
  KM="$V/bin/keystone-manage --config-file $B/etc/keystone/keystone.conf"
  $KM db_sync
  $KM fernet_setup --keystone-user root --keystone-group root
  $KM credential_setup --keystone-user root --keystone-group root
  chmod 700 $B/etc/keystone/fernet-keys $B/etc/keystone/credential-keys
  $KM bootstrap --bootstrap-password $PW --bootstrap-region-id RegionOne \
    --bootstrap-admin-url http://127.0.0.1:5000/v3/ --bootstrap-internal-url http://127.0.0.1:5000/v3/ \
    --bootstrap-public-url http://127.0.0.1:5000/v3/
  touch $B/data/.keystone-done
fi
OS_KEYSTONE_CONFIG_DIR=$B/etc/keystone wsgi keystone 5000 2 keystone_api
wait_http http://127.0.0.1:5000/v3 60
ts "keystone up on 127.0.0.1:5000"

cat > $B/etc/admin-openrc <<EOF
export OS_AUTH_URL=http://127.0.0.1:5000/v3 OS_USERNAME=admin OS_PASSWORD=$PW OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_REGION_NAME=RegionOne
export OS_IDENTITY_API_VERSION=3 PYTHONWARNINGS=ignore
EOF
cat > $B/etc/clouds.yaml <<EOF
clouds:
  testbed:
    auth:
      auth_url: http://127.0.0.1:5000/v3
      username: admin
      password: $PW
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
EOF
chmod 600 $B/etc/clouds.yaml
cat > $B/bin/register.py <<'EOF'
# idempotent: service project, service users, catalog entries
import openstack
c = openstack.connect(auth_url="http://127.0.0.1:5000/v3", username="admin", password="secret",
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
idc = c.identity
proj = idc.find_project("service", domain_id="default") or idc.create_project(name="service", domain_id="default")
admin = idc.find_role("admin")
service = idc.find_role("service") or idc.create_role(name="service")
for u in ["placement", "glance", "nova", "neutron", "cinder"]:
    user = idc.find_user(u, domain_id="default") or idc.create_user(name=u, password="secret", domain_id="default")
    idc.assign_project_role_to_user(proj, user, admin)
    idc.assign_project_role_to_user(proj, user, service)
existing = {s.name: s for s in idc.services()}
for name, typ, url in [("placement", "placement", "http://127.0.0.1:8778"),
                       ("glance", "image", "http://127.0.0.1:9292"),
                       ("nova", "compute", "http://127.0.0.1:8774/v2.1"),
                       ("neutron", "network", "http://127.0.0.1:9696"),
                       ("cinderv3", "volumev3", "http://127.0.0.1:8776/v3/$(project_id)s")]:
    s = existing.get(name) or idc.create_service(name=name, type=typ)
    have = {e.interface for e in idc.endpoints(service_id=s.id)}
    for iface in ("public", "internal", "admin"):
        if iface not in have:
            idc.create_endpoint(service_id=s.id, interface=iface, url=url, region_id="RegionOne")
print("catalog:", sorted(e["type"] for e in c.service_catalog))
EOF
once register $V/bin/python $B/bin/register.py
ts "service users + catalog registered"

# ---------------------------------------------------------------- 6. Placement
mkdir -p $B/etc/placement $B/logs/placement
{ cat <<EOF
[DEFAULT]
log_dir = $B/logs/placement
log_file = placement-api.log
[placement_database]
connection = $DB/placement
[api]
auth_strategy = keystone
EOF
authtoken placement; } > $B/etc/placement/placement.conf
once placement-db $V/bin/placement-manage --config-file $B/etc/placement/placement.conf db sync
OS_PLACEMENT_CONFIG_DIR=$B/etc/placement wsgi placement 8778 2 placement_api

# ---------------------------------------------------------------- 7. Glance
mkdir -p $B/etc/glance $B/logs/glance $B/data/glance/{images,staging,tasks,locks}
cpn $V/etc/glance/glance-api-paste.ini $B/etc/glance/
{ cat <<EOF
[DEFAULT]
log_dir = $B/logs/glance
log_file = glance-api.log
enabled_backends = fs:file
worker_self_reference_url = http://127.0.0.1:9292
[database]
connection = $DB/glance
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $B/data/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $B/data/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $B/data/glance/tasks/
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = $B/data/glance/locks
EOF
authtoken glance; } > $B/etc/glance/glance-api.conf
once glance-db $V/bin/glance-manage --config-file $B/etc/glance/glance-api.conf db_sync >/dev/null
OS_GLANCE_CONFIG_DIR=$B/etc/glance wsgi glance 9292 1 glance_api --threads 4

# ---------------------------------------------------------------- 8. Nova
mkdir -p $B/etc/nova $B/logs/nova $B/data/nova/{instances,locks}
cpn $V/etc/nova/api-paste.ini $B/etc/nova/
{ cat <<EOF
[DEFAULT]
transport_url = $RABBIT
my_ip = 127.0.0.1
host = minios
compute_driver = fake.FakeDriverWithoutFakeNodes
log_dir = $B/logs/nova
state_path = $B/data/nova
instances_path = $B/data/nova/instances
report_interval = 2
service_down_time = 10
[api]
auth_strategy = keystone
[api_database]
connection = $DB/nova_api
[database]
connection = $DB/nova
[conductor]
workers = 1
[scheduler]
workers = 1
# -1: the periodic discover raises IndexError in nova 34 when no scheduler is 'up' yet (restart);
# up.sh runs 'nova-manage cell_v2 discover_hosts' itself instead
discover_hosts_in_cells_interval = -1
[vnc]
enabled = False
[oslo_concurrency]
lock_path = $B/data/nova/locks
[glance]
region_name = RegionOne
[cinder]
os_region_name = RegionOne
EOF
authtoken nova; svcauth service_user nova; echo "send_service_user_token = true"
svcauth placement placement; svcauth neutron neutron; } > $B/etc/nova/nova.conf
# nova-compute gets the same file minus the database sections (compute must not talk to the DB)
awk '/^\[/{skip=($0=="[api_database]"||$0=="[database]")} !skip' $B/etc/nova/nova.conf > $B/etc/nova/nova-cpu.conf
printf '[DEFAULT]\nlog_file = nova-api.log\n' > $B/etc/nova/nova-api.conf
NM="$V/bin/nova-manage --config-file $B/etc/nova/nova.conf"
if [ ! -f $B/data/.nova-cells-done ]; then
  ts "nova api_db sync / cells / db sync"
  $NM api_db sync
  $NM cell_v2 map_cell0 --database_connection $DB/nova_cell0
  $NM cell_v2 create_cell --name cell1 --verbose
  $NM db sync
  touch $B/data/.nova-cells-done
else
  once nova-api-db $NM api_db sync; once nova-db $NM db sync
fi
OS_NOVA_CONFIG_DIR=$B/etc/nova OS_NOVA_CONFIG_FILES="api-paste.ini;nova.conf;nova-api.conf" wsgi nova-api 8774 2 nova_api
daemon nova-conductor $B/logs/nova/nova-conductor.stdout $V/bin/nova-conductor --config-file $B/etc/nova/nova.conf
daemon nova-scheduler $B/logs/nova/nova-scheduler.stdout $V/bin/nova-scheduler --config-file $B/etc/nova/nova.conf
daemon nova-compute   $B/logs/nova/nova-compute.stdout   $V/bin/nova-compute   --config-file $B/etc/nova/nova-cpu.conf

# ---------------------------------------------------------------- 9. Neutron
mkdir -p $B/etc/neutron/plugins/ml2 $B/logs/neutron $B/data/neutron/locks
cpn $V/etc/neutron/api-paste.ini $B/etc/neutron/
{ cat <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = $RABBIT
bind_host = 127.0.0.1
log_dir = $B/logs/neutron
state_path = $B/data/neutron
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 1
rpc_state_report_workers = 1
agent_down_time = 10
[database]
connection = $DB/neutron
[oslo_concurrency]
lock_path = $B/data/neutron/locks
EOF
authtoken neutron; } > $B/etc/neutron/neutron.conf
cat > $B/etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
[ml2]
type_drivers = flat,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vxlan]
vni_ranges = 1:1000
EOF
printf '[DEFAULT]\nlog_file = neutron-api.log\n' > $B/etc/neutron/neutron-api.conf
NCF="--config-file $B/etc/neutron/neutron.conf --config-file $B/etc/neutron/plugins/ml2/ml2_conf.ini"
once neutron-db $V/bin/neutron-db-manage $NCF upgrade heads > $B/logs/neutron/db-manage.out 2>&1
OS_NEUTRON_CONFIG_DIR=$B/etc/neutron OS_NEUTRON_CONFIG_FILES="neutron.conf;plugins/ml2/ml2_conf.ini;neutron-api.conf" \
  wsgi neutron-api 9696 1 neutron_api
daemon neutron-rpc-server       $B/logs/neutron/neutron-rpc-server.stdout       $V/bin/neutron-rpc-server $NCF
daemon neutron-periodic-workers $B/logs/neutron/neutron-periodic-workers.stdout $V/bin/neutron-periodic-workers $NCF
cat > $B/bin/fake_neutron_agents.py <<'EOF'
"""Heartbeat fake Neutron agents through the real agent RPC path (report_state on q-reports-plugin).
An 'Open vSwitch agent' on host 'minios' lets ML2/openvswitch bind vxlan ports for nova's host;
DHCP and L3 agents make 'agent list' look like a real cloud. Kill it -> agents go dead after
agent_down_time, exactly like real agents."""
import sys, time
sys.argv = [sys.argv[0], "--config-file", sys.argv[1]]
from oslo_config import cfg
from neutron.common import config as common_config
from neutron.conf.agent import common as agent_conf
from neutron.agent import rpc as agent_rpc
from neutron_lib import context
from neutron_lib.agent import topics
common_config.register_common_config_options()
agent_conf.register_agent_state_opts_helper(cfg.CONF)
common_config.init(sys.argv[1:])          # also initialises oslo.messaging
cfg.CONF.set_override("report_interval", 5, "AGENT")  # = RPC timeout of report_state (default 30 s)
HOST = "minios"
AGENTS = [
    {"binary": "neutron-openvswitch-agent", "agent_type": "Open vSwitch agent", "topic": "N/A",
     "configurations": {"bridge_mappings": {"public": "br-ex"}, "tunnel_types": ["vxlan"],
                        "tunneling_ip": "127.0.0.1", "integration_bridge": "br-int",
                        "datapath_type": "system", "ovs_capabilities": {}, "l2_population": False,
                        "enable_distributed_routing": False}},
    {"binary": "neutron-dhcp-agent", "agent_type": "DHCP agent", "topic": "dhcp_agent",
     "configurations": {"dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq", "networks": 0}},
    {"binary": "neutron-l3-agent", "agent_type": "L3 agent", "topic": "l3_agent",
     "configurations": {"agent_mode": "legacy", "routers": 0}},
]
api = agent_rpc.PluginReportStateAPI(topics.REPORTS)
ctx = context.get_admin_context_without_session()
first = True
while True:
    for a in AGENTS:
        try:
            api.report_state(ctx, dict(a, host=HOST, start_flag=first), use_call=True)
        except Exception as e:  # keep beating while rabbit/server is away
            print("report_state failed:", e, flush=True)
    first = False
    time.sleep(2)
EOF
daemon fake-neutron-agents $B/logs/neutron/fake-agents.out $V/bin/python $B/bin/fake_neutron_agents.py $B/etc/neutron/neutron.conf

# ---------------------------------------------------------------- 10. Cinder
mkdir -p $B/etc/cinder $B/logs/cinder $B/data/cinder/locks
cpn $V/etc/cinder/api-paste.ini $B/etc/cinder/; cpn $V/etc/cinder/resource_filters.json $B/etc/cinder/
{ cat <<EOF
[DEFAULT]
transport_url = $RABBIT
auth_strategy = keystone
my_ip = 127.0.0.1
host = minios
osapi_volume_listen = 127.0.0.1
api_paste_config = $B/etc/cinder/api-paste.ini
resource_query_filters_file = $B/etc/cinder/resource_filters.json
log_dir = $B/logs/cinder
state_path = $B/data/cinder
enabled_backends = fake
report_interval = 2
service_down_time = 10
periodic_interval = 10
periodic_fuzzy_delay = 0
glance_api_servers = http://127.0.0.1:9292
[database]
connection = $DB/cinder
[oslo_concurrency]
lock_path = $B/data/cinder/locks
[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
EOF
authtoken cinder; } > $B/etc/cinder/cinder.conf
printf '[DEFAULT]\nlog_file = cinder-api.log\n' > $B/etc/cinder/cinder-api.conf
once cinder-db $V/bin/cinder-manage --config-file $B/etc/cinder/cinder.conf db sync > $B/logs/cinder/db-sync.out 2>&1
wsgi cinder-api 8776 1 cinder_api
daemon cinder-scheduler $B/logs/cinder/cinder-scheduler.stdout $V/bin/cinder-scheduler --config-file $B/etc/cinder/cinder.conf
daemon cinder-volume    $B/logs/cinder/cinder-volume.stdout    $V/bin/cinder-volume    --config-file $B/etc/cinder/cinder.conf

# ---------------------------------------------------------------- 11. wait for everything
for u in http://127.0.0.1:8778/ http://127.0.0.1:9292/ http://127.0.0.1:8774/ http://127.0.0.1:9696/ http://127.0.0.1:8776/; do
  wait_http $u 90
done
ts "all HTTP APIs answer"
cat > $B/bin/wait_ready.py <<'EOF'
import sys, time, openstack
c = openstack.connect(auth_url="http://127.0.0.1:5000/v3", username="admin", password="secret",
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
t0 = time.time()
checks = {
    "nova services up": lambda: all({s.binary: s.state for s in c.compute.services()}.get(b) == "up"
                                    for b in ("nova-conductor", "nova-scheduler", "nova-compute")),
    "hypervisor listed": lambda: len(list(c.compute.hypervisors())) > 0,
    "cinder services up": lambda: all({s.binary: s.state for s in c.block_storage.services()}.get(b) == "up"
                                      for b in ("cinder-scheduler", "cinder-volume")),
    "cinder pool reported": lambda: len(list(c.block_storage.backend_pools())) > 0,
    "3 neutron agents alive": lambda: [a.is_alive for a in c.network.agents()] == [True] * 3,
}
done = {}
while time.time() - t0 < 180 and len(done) < len(checks):
    for name, fn in checks.items():
        if name not in done and fn():
            done[name] = time.time() - t0
    time.sleep(0.5)
for name in checks:
    print("  %-24s %s" % (name, ("after %.1fs" % done[name]) if name in done else "NOT READY"))
sys.exit(0 if len(done) == len(checks) else 1)
EOF
# map the compute host into cell1 as soon as it has registered
for i in $(seq 1 60); do
  $NM cell_v2 discover_hosts 2>/dev/null | grep -q . || true
  [ "$($MY -N -e "select count(*) from nova_api.host_mappings")" -ge 1 ] && break; sleep 1
done
$V/bin/python $B/bin/wait_ready.py
ts "control plane ready"
ss -ltnpH | awk '{print $4}' | grep -E ':(3306|5672|25672|4369|5000|8778|9292|8774|9696|8776)$' | sort -u | tr '\n' ' '; echo

# ---------------------------------------------------------------- 12. smoke test
[ "${SKIP_SMOKE:-0}" = 1 ] && exit 0
cat > $B/bin/smoke.py <<'EOF'
import os, time, openstack
c = openstack.connect(auth_url="http://127.0.0.1:5000/v3", username="admin", password="secret",
                      project_name="admin", user_domain_name="Default", project_domain_name="Default",
                      region_name="RegionOne")
t = time.time()
print("projects:", [p.name for p in c.identity.projects()])
print("catalog:", sorted(s["type"] for s in c.service_catalog))
print("placement RPs:", [r.name for r in c.placement.resource_providers()])
img = c.image.find_image("tiny")
if not img:
    p = os.path.join(os.environ.get("OPSCTL_TESTBED", "/tmp/minios"), "data/tiny.img")
    with open(p, "wb") as f:
        f.write(os.urandom(1 << 20))
    img = c.image.create_image(name="tiny", filename=p, disk_format="raw", container_format="bare",
                               visibility="public", wait=True)
print("images:", [(i.name, i.status, i.size) for i in c.image.images()])
fl = c.compute.find_flavor("m1.tiny") or c.compute.create_flavor(name="m1.tiny", ram=512, vcpus=1, disk=1)
net = c.network.find_network("private") or c.network.create_network(name="private")
if not c.network.find_subnet("private-sub"):
    c.network.create_subnet(name="private-sub", network_id=net.id, ip_version=4, cidr="10.99.0.0/24")
print("agents:", [(a.agent_type, a.host, a.is_alive) for a in c.network.agents()])
print("nova services:", [(s.binary, s.state) for s in c.compute.services()])
print("hypervisors:", [(h.name, h.hypervisor_type, h.state) for h in c.compute.hypervisors()])
# a testbed brought up again (re-runs on one machine) must not run into the instance/volume quotas
old = [s for s in c.compute.servers() if (s.name or "").startswith("smoke-")]
for s in old:
    c.compute.delete_server(s)
for s in old:
    c.compute.wait_for_delete(s, interval=1, wait=120)
for v in list(c.block_storage.volumes()):
    if (v.name or "").startswith("smoke-"):
        v = c.block_storage.wait_for_status(v, status="available", failures=["error"], interval=1, wait=60)
        c.block_storage.delete_volume(v)
        c.block_storage.wait_for_delete(v, interval=1, wait=60)
if old:
    print("removed %d earlier smoke server(s) and their volumes" % len(old))
name = "smoke-%d" % int(time.time())
t1 = time.time()
srv = c.compute.create_server(name=name, flavor_id=fl.id, image_id=img.id, networks=[{"uuid": net.id}])
srv = c.compute.wait_for_server(srv, status="ACTIVE", failures=["ERROR"], interval=1, wait=120)
print("server %s %s %s in %.1fs" % (srv.name, srv.status, srv.addresses, time.time() - t1))
t1 = time.time()
vol = c.block_storage.create_volume(name=name, size=1)
vol = c.block_storage.wait_for_status(vol, status="available", failures=["error"], interval=1, wait=60)
c.compute.create_volume_attachment(srv, volume_id=vol.id)
vol = c.block_storage.wait_for_status(vol, status="in-use", failures=["error"], interval=1, wait=60)
print("volume %s %s (attached) in %.1fs" % (vol.name, vol.status, time.time() - t1))
print("SMOKE OK in %.1fs" % (time.time() - t))
EOF
$V/bin/python $B/bin/smoke.py
ts "up.sh done"
