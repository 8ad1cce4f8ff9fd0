import pytest

from opsctl import inventory as inv
from opsctl.errors import ConfigError

KOLLA_MULTINODE = """
# These initial groups are the only groups required to be modified.
[control]
ctl[01:03] ansible_user=kolla
"""

KOLLA = """
[control]
ctl01 ansible_host=10.0.0.11 ansible_user=kolla
ctl02 ansible_host=10.0.0.12 ansible_user=kolla

[network:children]
control

[compute]
cmp01 ansible_host=10.0.1.21 ansible_port=2222 ansible_ssh_private_key_file=/root/.ssh/kolla

[monitoring]
ctl01

[storage]
cmp01

[deployment]
localhost ansible_connection=local

[baremetal:children]
control
network
compute
storage
monitoring

[nova:children]
control

[all:vars]
ansible_python_interpreter=/usr/bin/python3
"""

OSA = """
[shared-infra_hosts]
infra1 ansible_host=172.29.236.11

[compute_hosts]
compute1 ansible_host=172.29.236.21

[network-gateway_hosts]
infra1
"""


def test_kolla_groups_map_to_roles(tmp_path):
    f = tmp_path / "multinode"
    f.write_text(KOLLA)
    got = {h.name: h for h in inv.from_ansible_ini(f).hosts}
    assert got["ctl01"].roles == {"controller", "network"}
    assert got["cmp01"].roles == {"compute", "storage"}
    assert got["cmp01"].ssh.port == 2222 and got["cmp01"].ssh.key_file == "/root/.ssh/kolla"
    assert got["ctl02"].ssh.user == "kolla" and got["ctl02"].address == "10.0.0.12"
    assert got["localhost"].is_local and got["localhost"].roles == frozenset()


def test_group_vars_become_and_kolla_spellings(tmp_path):
    """kolla-ansible's multinode spells the user ansible_ssh_user and sets ansible_become; [group:vars]
    apply to the group's hosts, a host line wins over them, [all:vars] is the base."""
    f = tmp_path / "multinode"
    f.write_text("""
[control]
ctl01 ansible_ssh_user=kolla ansible_become=True ansible_private_key_file=/etc/kolla/id_rsa
ctl02 ansible_become=false

[compute]
cmp01

[control:vars]
ansible_ssh_user=deploy

[all:vars]
ansible_become='yes'
ansible_ssh_user=ops
""")
    got = {h.name: h.ssh for h in inv.from_ansible_ini(f).hosts}
    assert (got["ctl01"].user, got["ctl01"].become, got["ctl01"].key_file) == ("kolla", True, "/etc/kolla/id_rsa")
    assert (got["ctl02"].user, got["ctl02"].become) == ("deploy", False)
    assert (got["cmp01"].user, got["cmp01"].become) == ("ops", True)


def test_osa_groups_map_to_roles(tmp_path):
    f = tmp_path / "inventory.ini"
    f.write_text(OSA)
    got = {h.name: h.roles for h in inv.from_ansible_ini(f).hosts}
    assert got == {"infra1": {"controller", "network"}, "compute1": {"compute"}}


def test_host_ranges_are_refused_clearly(tmp_path):
    f = tmp_path / "multinode"
    f.write_text(KOLLA_MULTINODE)
    with pytest.raises(ConfigError, match=r"multinode:4: host ranges"):
        inv.from_ansible_ini(f)


def test_cyclic_children_are_an_error():
    with pytest.raises(ConfigError, match="includes itself"):
        inv.parse_ansible_ini("[a:children]\nb\n[b:children]\na\n")


def test_yaml_inventory_with_jump_and_defaults():
    hosts = {"cmp1": {"address": "10.0.0.5", "roles": ["compute"], "ssh": {"jump": {"address": "bastion", "user": "ops"}}},
             "ctl1": {"roles": ["controller"], "ssh": {"user": "admin"}}}
    got = {h.name: h for h in inv.from_config(hosts, {"ssh": {"user": "root", "key_file": "/k", "port": 2200}}).hosts}
    assert got["cmp1"].ssh.jump.address == "bastion" and got["cmp1"].ssh.jump.user == "ops"
    assert got["cmp1"].ssh.port == 2200 and got["cmp1"].ssh.key_file == "/k"
    assert got["ctl1"].ssh.user == "admin" and got["ctl1"].address == "ctl1"


def test_select_by_role_and_unknown_host():
    i = inv.Inventory((inv.HostSpec("a", frozenset({"compute"})), inv.HostSpec("b", frozenset({"controller"}))), "t")
    assert [h.name for h in i.select(roles=["compute"])] == ["a"]
    with pytest.raises(ConfigError, match="unknown host"):
        i.select(names=["zzz"])


def test_local_inventory_detects_roles_from_processes(monkeypatch):
    monkeypatch.setattr(inv, "running_process_tokens", lambda: {"bash", "nova-compute", "beam.smp"})
    i = inv.local_inventory()
    assert len(i.hosts) == 1 and i.hosts[0].is_local
    assert i.hosts[0].roles == {"compute", "controller"}
