"""The Galera bootstrap decision, from real-format grastate.dat / gvwstate.dat contents."""

from __future__ import annotations

from opsctl.galera import choose_bootstrap_node, galera_node, parse_grastate
from tests_runbook_helpers import GRASTATE  # real format, MariaDB 10.x / Galera 4


def node(host, seqno, safe=0, gvw=False, running=False):
    return galera_node(host, GRASTATE.format(seqno=seqno, safe=safe), gvw, running)


def test_parse_grastate_real_format():
    values = parse_grastate(GRASTATE.format(seqno=8204503945773, safe=1))
    assert values == {"version": "2.1", "uuid": "5ee99582-bb8d-11e2-b8e3-23de375c1d30", "seqno": "8204503945773",
                      "safe_to_bootstrap": "1"}
    n = node("db1", 8204503945773, safe=1)
    assert n.seqno == 8204503945773 and n.safe_to_bootstrap and n.uuid.startswith("5ee99582")


def test_missing_or_garbled_grastate_has_no_seqno():
    assert galera_node("db1", None, False, False).seqno is None
    assert galera_node("db1", "# GALERA saved state\nseqno: banana\n", False, False).seqno is None


def test_refuses_while_any_node_runs():
    d = choose_bootstrap_node([node("db1", 10), node("db2", 12, running=True), node("db3", 11)])
    assert d.host is None and "db2" in d.reason


def test_prefers_the_node_with_gvwstate_over_a_higher_seqno():
    d = choose_bootstrap_node([node("db1", 100), node("db2", 90, gvw=True), node("db3", 95)])
    assert d.host == "db2" and "gvwstate" in d.reason


def test_safe_to_bootstrap_wins_when_no_gvwstate():
    d = choose_bootstrap_node([node("db1", 100), node("db2", 100, safe=1), node("db3", 99)])
    assert d.host == "db2"


def test_highest_seqno_and_never_minus_one():
    d = choose_bootstrap_node([node("db1", -1), node("db2", 1500), node("db3", 1499)])
    assert d.host == "db2" and "1500" in d.reason and "db1" in d.reason


def test_never_a_node_with_seqno_minus_one_even_with_gvwstate():
    d = choose_bootstrap_node([node("db1", -1, gvw=True), node("db2", 7), node("db3", 5)])
    assert d.host == "db2"


def test_all_minus_one_asks_the_operator_to_recover():
    d = choose_bootstrap_node([node("db1", -1, gvw=True), node("db2", -1, gvw=True), node("db3", -1)])
    assert d.host is None and "wsrep-recover" in d.reason


def test_tie_is_the_operators_call():
    d = choose_bootstrap_node([node("db1", 42), node("db2", 42), node("db3", 41)])
    assert d.host is None and "db1" in d.reason and "db2" in d.reason


def test_several_gvwstate_nodes_pick_the_highest_seqno_among_them():
    d = choose_bootstrap_node([node("db1", 80, gvw=True), node("db2", 81, gvw=True), node("db3", 99)])
    assert d.host == "db2"


def test_no_nodes():
    assert choose_bootstrap_node([]).host is None
