import json

import pytest

from opsctl.output import nagios_line, to_json
from opsctl.results import Result, Status, threshold_status, worst


def test_status_codes_are_nagios():
    assert [int(s) for s in (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN)] == [0, 1, 2, 3]


def test_worst_wins_and_empty_is_ok():
    assert worst([]) == Status.OK
    assert worst([Status.OK, Status.WARNING]) == Status.WARNING
    assert worst([Status.UNKNOWN, Status.WARNING]) == Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.CRITICAL, Status.OK]) == Status.CRITICAL


@pytest.mark.parametrize("value,expected", [(79.9, Status.OK), (80, Status.WARNING), (90, Status.CRITICAL)])
def test_threshold_status(value, expected):
    assert threshold_status(value, 80, 90) == expected


def test_threshold_lower_is_worse():
    assert threshold_status(5, 10, 2, higher_is_worse=False) == Status.WARNING
    assert threshold_status(1, 10, 2, higher_is_worse=False) == Status.CRITICAL


def test_result_is_frozen_and_round_trips():
    r = Result("nova.compute_services_up", "ctl1", Status.CRITICAL, "nova-compute on cmp1\nis down", metrics={"down": 1})
    with pytest.raises(Exception):
        r.status = Status.OK  # type: ignore[misc]
    assert r.summary == "nova-compute on cmp1 is down"  # always one line
    assert r.component == "nova"
    assert Result.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_json_and_nagios_share_results():
    results = [
        Result("host.disk_space", "cmp1", Status.WARNING, "/ 85.0% used", metrics={"disk_used_pct:/": 85.0}, runbook="disk-full"),
        Result("host.load", "cmp1", Status.OK, "load fine", metrics={"load5": 0.5}),
    ]
    doc = json.loads(to_json(results))
    assert doc["status"] == "WARNING" and doc["code"] == 1
    assert doc["results"][0]["check"] == "host.disk_space" and doc["results"][0]["runbook"] == "disk-full"
    line = nagios_line(results)
    assert line.startswith("OPSCTL WARNING - host.disk_space@cmp1: / 85.0% used")
    assert "'host.disk_space.disk_used_pct:/'=85" in line and "'host.load.load5'=0.5" in line
    assert line.count("|") == 1 and "\n" not in line


def test_nagios_empty_selection_is_ok():
    assert nagios_line([]) == "OPSCTL OK - no checks applied to the selection"
