"""Parsers of the host checks, fed with output captured on real machines (this test box, the sshd netns
hosts, chronyd 4.3 in a network namespace), and the catalog logic that decides what a host must run."""

import fnmatch
import math

import pytest

from opsctl.checks import _hostfacts as facts
from opsctl.checks._hostparse import (
    Mount, Proc, command_tokens, parse_chronyc_tracking, parse_cpu_list, parse_df_output, parse_df_posix, parse_limits,
    parse_loadavg, parse_meminfo, parse_ntpq_rv, parse_ps, parse_ss_listen, parse_systemctl_show, parse_timedatectl_show,
)
from opsctl.checks.host import expected_services, service_runbook
from opsctl.checkdef import CheckContext
from opsctl.components import CATALOG, apply_overrides
from opsctl.config import Config, parse
from opsctl.inventory import HostSpec

MEMINFO = """MemTotal:       24684084 kB
MemFree:        14657384 kB
MemAvailable:   18871516 kB
Buffers:           37500 kB
SwapTotal:             0 kB
SwapFree:              0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""

LIMITS = """Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max processes             96365                96365                processes 
Max open files            20000                524288               files     
Max locked memory         8388608              8388608              bytes     
"""

DF_OUTPUT = """Filesystem              Type        1B-blocks        Used   Inodes  IUsed Mounted on
devtmpfs                devtmpfs  12630487040           0  3083615    114 /dev
tmpfs                   tmpfs     25276502016      122880  3085510     31 /dev/shm
/dev/vda                ext4     270553174016 30804553728 16777216 470027 /
/dev/vda                ext4     270553174016 30804553728 16777216 470027 /run/netns
model_tools_unavailable tmpfs            4096           0  3085510      1 /mnt/sandboxing/model_tools_env/v1/python
/dev/vdb1               vfat        535805952     6291456        -      - /boot/efi
/dev/vdc                xfs       10725883904  9999999999  5242880 5000000 /var/lib/nova/instances with space
"""

DF_POSIX = """Filesystem              Type         1-blocks        Used   Available Capacity Mounted on
devtmpfs                devtmpfs  12630487040           0 12630487040       0% /dev
/dev/vda                ext4     270553174016 30804557824 78139736064      29% /
"""
DF_INODES = """Filesystem                Inodes  IUsed    IFree IUse% Mounted on
devtmpfs                 3083615    114  3083501    1% /dev
/dev/vda                16777216 470029 16307187    3% /
"""

SS = """LISTEN 0      80     127.0.0.1:33913 0.0.0.0:*
LISTEN 0      150    127.0.0.1:3306  0.0.0.0:*
LISTEN 0      2048   127.0.0.1:5000  0.0.0.0:*
LISTEN 0      128      0.0.0.0:2024  0.0.0.0:*
LISTEN 0      4096       [::1]:4369     [::]:*
LISTEN 0      4096 127.0.0.53%lo:53      0.0.0.0:*
LISTEN 0      128            *:22           *:*
"""

PS = """    1     0 process_api     /process_api --firecracker-init --addr 0.0.0.0:2024
    2     0 kthreadd        [kthreadd]
    3     2 pool_workqueue_ [pool_workqueue_release]
 4095     1 mariadbd        /usr/sbin/mariadbd --defaults-file=/tmp/minios/etc/my.cnf
 4268     1 gunicorn: maste gunicorn: master [keystone]
 4272  4268 gunicorn: worke gunicorn: worker [keystone]
 4351     1 nova-conductor: nova-conductor: master process [/tmp/minios/venv/bin/nova-conductor --config-file /tmp/minios/etc/nova/nova.conf]
 4424     1 python          /tmp/minios/venv/bin/python /tmp/minios/bin/fake_neutron_agents.py /tmp/minios/etc/neutron/neutron.conf
 7300     1 nova-compute    /tmp/minios/venv/bin/python3 /tmp/minios/venv/bin/nova-compute --config-file /tmp/minios/etc/nova/nova-cpu.conf
 9001     1 tail            tail -f /var/log/nova/nova-compute.log
 9002  9001 less            less /usr/bin/nova-compute
"""

CHRONY_SYNCED = """Reference ID    : C6120064 (198.18.0.100)
Stratum         : 9
Ref time (UTC)  : Tue Nov 24 13:11:05 2026
System time     : 0.000002435 seconds slow of NTP time
Last offset     : -0.000000117 seconds
RMS offset      : 0.000004727 seconds
Frequency       : 0.498 ppm slow
Residual freq   : -0.003 ppm
Skew            : 2.143 ppm
Root delay      : 0.000023729 seconds
Root dispersion : 0.000005704 seconds
Update interval : 1.0 seconds
Leap status     : Normal
"""

CHRONY_UNSYNCED = """Reference ID    : 00000000 ()
Stratum         : 0
Ref time (UTC)  : Thu Jan 01 00:00:00 1970
System time     : 0.000000000 seconds fast of NTP time
Last offset     : +0.000000000 seconds
RMS offset      : 0.000000000 seconds
Frequency       : 0.000 ppm slow
Residual freq   : +0.000 ppm
Skew            : 0.000 ppm
Root delay      : 1.000000000 seconds
Root dispersion : 1.000000000 seconds
Update interval : 0.0 seconds
Leap status     : Not synchronised
"""

# systemd 252 `systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState a b c` (no systemd runs
# on this test machine, so this is the documented key=value block format, one block per unit asked for).
SYSTEMCTL = """Id=nova-compute.service
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=enabled

Id=openstack-nova-compute.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=

Id=chrony.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
"""


def test_meminfo_in_bytes_and_counters_kept():
    info = parse_meminfo(MEMINFO)
    assert info["MemTotal"] == 24684084 * 1024 and info["MemAvailable"] == 18871516 * 1024
    assert info["HugePages_Total"] == 0 and info["SwapTotal"] == 0


def test_loadavg_and_cpu_list():
    assert parse_loadavg("18.86 8.85 4.10 3/612 29031\n") == (18.86, 8.85, 4.10)
    assert parse_cpu_list("0-1\n") == 2
    assert parse_cpu_list("0-3,8-11,15\n") == 9


def test_limits_soft_and_hard_and_unlimited():
    assert parse_limits(LIMITS) == (20000.0, 524288.0)
    assert parse_limits(LIMITS.replace("20000                524288", "unlimited            unlimited")) == (math.inf, math.inf)
    assert parse_limits("Limit Soft Hard\n") is None


def test_df_output_with_bind_mount_dedupe_and_odd_columns():
    mounts = parse_df_output(DF_OUTPUT)
    by_target = {m.mountpoint: m for m in mounts}
    assert by_target["/"] == Mount("/dev/vda", "/", "ext4", 270553174016, 30804553728, 16777216, 470027)
    assert by_target["/boot/efi"].inodes == 0  # vfat has no inodes: "-"
    assert "/var/lib/nova/instances with space" in by_target  # the mount point is the rest of the line
    deduped = {m.mountpoint for m in facts.dedupe_mounts(mounts)}
    assert "/" in deduped and "/run/netns" not in deduped  # the bind mount of /dev/vda counts once
    assert {"/dev", "/dev/shm"} <= deduped  # pseudo filesystems are told apart by mount point


def test_df_posix_fallback_joins_inodes():
    mounts = {m.mountpoint: m for m in parse_df_posix(DF_POSIX, DF_INODES)}
    assert mounts["/"].size == 270553174016 and mounts["/"].inodes_used == 470029
    assert mounts["/dev"].fstype == "devtmpfs"


def test_ss_listeners_all_address_forms():
    listeners = parse_ss_listen(SS)
    assert {3306, 5000, 2024, 4369, 53, 22, 33913} == listeners.ports
    assert ("::1", 4369) in listeners.sockets and ("127.0.0.53", 53) in listeners.sockets and ("::", 22) in listeners.sockets


def test_ps_drops_kernel_threads_and_tokenises_daemons():
    procs = {p.pid: p for p in parse_ps(PS)}
    assert 2 not in procs and 3 not in procs
    assert procs[4351].name == "nova-conductor:" and "nova-conductor" in procs[4351].tokens
    assert "keystone" in procs[4268].tokens
    assert {"python3", "nova-compute"} <= procs[7300].tokens
    assert "fake_neutron_agents" in procs[4424].tokens
    assert "nova-compute" not in procs[9001].tokens  # a log file name is not the daemon
    assert procs[4272].ppid == 4268


def test_command_tokens_stop_at_first_option():
    assert command_tokens("/usr/bin/python3 /usr/bin/nova-compute --config-file /etc/nova/nova-compute.conf") == {"python3", "nova-compute"}
    assert command_tokens("gunicorn: master [placement]") == {"placement"}
    # neutron titles the rpc-server's workers "neutron-server": they must not count as neutron-server
    assert command_tokens("neutron-server: rpc worker (/venv/bin/python3 /venv/bin/neutron-rpc-server --config-file "
                          "/etc/neutron/neutron.conf)") == {"python3", "neutron-rpc-server"}
    assert command_tokens("nova-conductor: master process [/venv/bin/nova-conductor --config-file /etc/nova/nova.conf]") == {"nova-conductor"}
    assert command_tokens("nova-conductor: ServiceWrapper worker(0)") == {"nova-conductor", "ServiceWrapper", "worker(0"}
    assert command_tokens("/usr/bin/python3 -m nova.cmd.compute") == {"python3"}
    assert command_tokens("") == frozenset()


def test_chronyc_synchronised_and_not():
    ok = parse_chronyc_tracking(CHRONY_SYNCED)
    assert ok.synchronised and ok.stratum == 9 and ok.offset == pytest.approx(2.435e-6) and ok.reference.startswith("C6120064")
    bad = parse_chronyc_tracking(CHRONY_UNSYNCED)
    assert not bad.synchronised and bad.leap == "Not synchronised" and bad.stratum == 0
    fast = parse_chronyc_tracking(CHRONY_SYNCED.replace("0.000002435 seconds slow", "1.500000000 seconds fast"))
    assert fast.offset == 1.5


def test_timedatectl_and_ntpq():
    assert parse_timedatectl_show("Timezone=UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\nTimeUSec=Tue 2026-11-24 13:11:05 UTC\n").synchronised
    off = parse_timedatectl_show("NTP=no\nNTPSynchronized=no\n")
    assert not off.synchronised and "inactive" in off.reference
    synced = parse_ntpq_rv("leap=00, stratum=3, offset=-12.345, refid=192.0.2.10\n")
    assert synced.synchronised and synced.offset == pytest.approx(0.012345) and synced.stratum == 3
    assert not parse_ntpq_rv("leap=11, stratum=16, offset=0.000, refid=INIT\n").synchronised


def test_systemctl_show_blocks():
    units = parse_systemctl_show(SYSTEMCTL)
    assert units["nova-compute.service"].active == "failed" and units["nova-compute.service"].loaded
    assert not units["openstack-nova-compute.service"].loaded
    assert units["chrony.service"].file_state == "enabled"


@pytest.mark.parametrize("service,runbook", [
    ("nova-compute", "nova-compute-down"), ("cinder-volume", "cinder-volume-down"),
    ("neutron-openvswitch-agent", "neutron-agent-dead"), ("neutron-l3-agent", "neutron-agent-dead"),
    ("mariadb", "mariadb-down"), ("rabbitmq-server", "rabbitmq-down"), ("nova-api", "service-down"),
    ("neutron-server", "service-down"), ("memcached", "service-down"),
])
def test_service_runbooks_are_the_shared_ids(service, runbook):
    assert service_runbook(service) == runbook


def _ctx(roles, catalog=CATALOG, thresholds=None, config=None):
    from opsctl.checks.host import processes

    return CheckContext(processes, "h1", config or Config(), catalog, thresholds or {"skip_services": []},
                        spec=HostSpec("h1", frozenset(roles)))


def _host_facts(monkeypatch, *, dirs=(), running=(), logs=()):
    """What the host shows: existing config dirs, running process names, existing log files."""
    from opsctl.checks import _hostfacts as facts

    procs = [Proc(100 + i, 1, name, name) for i, name in enumerate(running)]
    monkeypatch.setattr(facts, "processes", lambda ctx: procs)
    monkeypatch.setattr(facts, "path_exists", lambda ctx, path: path in dirs)
    monkeypatch.setattr(facts, "glob", lambda ctx, pattern: [f for f in logs if fnmatch.fnmatchcase(f, pattern)])


def test_expected_services_follow_roles_overrides_and_skips(monkeypatch):
    _host_facts(monkeypatch, dirs={"/etc/nova", "/etc/neutron", "/etc/swift"},
                logs={"/var/log/neutron/neutron-openvswitch-agent.log"})
    compute = {s.name for _, s in expected_services(_ctx({"compute"}))}
    assert compute == {"nova-compute", "neutron-openvswitch-agent"}
    assert expected_services(_ctx(set())) == []  # a role-less host expects nothing
    catalog = apply_overrides(CATALOG, {"neutron": {"services": {"neutron-openvswitch-agent": {"roles": ["network"]}}},
                                        "site": {"services": {"site-agent": {"roles": ["compute"], "processes": ["site-agent"]}}}})
    config = parse({"components": {"site": {"services": {"site-agent": {"roles": ["compute"], "processes": ["site-agent"]}}}}})
    assert {s.name for _, s in expected_services(_ctx({"compute"}, catalog, config=config))} == {"nova-compute", "site-agent"}
    skipped = expected_services(_ctx({"controller"}, thresholds={"skip_services": ["swift-*", "nova-novncproxy"]}))
    names = {s.name for _, s in skipped}
    assert "nova-api" in names and not any(n.startswith("swift-") for n in names) and "nova-novncproxy" not in names


def test_only_deployed_components_and_optional_services_that_ran_are_expected(monkeypatch):
    # a controller with nova installed, keystone running, no swift, no glance; novncproxy never ran
    _host_facts(monkeypatch, dirs={"/etc/nova"}, running=("keystone",))
    names = {s.name for _, s in expected_services(_ctx({"controller"}))}
    assert {"nova-api", "nova-conductor", "nova-scheduler", "keystone"} <= names
    assert not any(n.startswith(("swift-", "glance", "cinder")) for n in names)
    assert "nova-novncproxy" not in names
    # once novncproxy has run here (its log exists), its absence is a failure
    _host_facts(monkeypatch, dirs={"/etc/nova"}, logs={"/var/log/nova/nova-novncproxy.log"})
    assert "nova-novncproxy" in {s.name for _, s in expected_services(_ctx({"controller"}))}


def test_proc_tokens_include_cleaned_name():
    assert "nova-conductor" in Proc(1, 0, "nova-conductor:", "").tokens
