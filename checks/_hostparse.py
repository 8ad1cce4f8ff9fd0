"""Parsers for the text host checks read remotely: df, ss, ps, chronyc, timedatectl, systemctl, /proc files.

Pure functions over captured command output; the same data types come from psutil locally.
"""

from __future__ import annotations

import math
import functools
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem with space and inode usage (bytes, counts)."""

    device: str
    mountpoint: str
    fstype: str
    size: int
    used: int
    inodes: int
    inodes_used: int


@dataclass(frozen=True)
class Proc:
    """A process as the service matcher sees it: its name and the program words of its command line."""

    pid: int
    ppid: int
    name: str
    args: str
    tokens: frozenset[str] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        if not self.tokens:
            name = self.name.strip(_STRIP)
            tokens = command_tokens(self.args) | ({name} if name else set())
            object.__setattr__(self, "tokens", frozenset(tokens))


@dataclass(frozen=True)
class TimeSync:
    """What the time daemon reports."""

    source: str  # chronyc / timedatectl
    synchronised: bool
    offset: float | None = None  # seconds, absolute
    stratum: int | None = None
    reference: str = ""
    leap: str = ""


@dataclass(frozen=True)
class UnitState:
    id: str
    load: str
    active: str
    sub: str
    file_state: str = ""

    @property
    def loaded(self) -> bool:
        return self.load == "loaded"


@dataclass
class Listeners:
    """Listening TCP sockets as (address, port)."""

    sockets: set[tuple[str, int]] = field(default_factory=set)

    @property
    def ports(self) -> set[int]:
        return {p for _, p in self.sockets}


# ------------------------------------------------------------------------------------ /proc files
def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in bytes ("kB" values multiplied, counters kept as they are)."""
    info: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            info[key.strip()] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return info


def parse_loadavg(text: str) -> tuple[float, float, float]:
    f = text.split()
    return float(f[0]), float(f[1]), float(f[2])


def _limit(value: str) -> float:
    return math.inf if value == "unlimited" else float(int(value))


def parse_limits(text: str) -> tuple[float, float] | None:
    """(soft, hard) 'Max open files' from /proc/<pid>/limits; inf for unlimited."""
    for line in text.splitlines():
        if line.startswith("Max open files"):
            f = line[len("Max open files"):].split()
            return _limit(f[0]), _limit(f[1])
    return None


# ------------------------------------------------------------------------------------ df
def _count(value: str) -> int:
    return int(value) if value.isdigit() else 0


def parse_df_output(text: str) -> list[Mount]:
    """`df -B1 --output=source,fstype,size,used,itotal,iused,target` (GNU coreutils)."""
    mounts = []
    for line in text.splitlines()[1:]:
        f = line.split(None, 6)
        if len(f) < 7 or not f[2].isdigit():
            continue
        mounts.append(Mount(f[0], f[6], f[1], int(f[2]), _count(f[3]), _count(f[4]), _count(f[5])))
    return mounts


def parse_df_posix(space: str, inodes: str) -> list[Mount]:
    """`df -P -T -B1` and `df -P -i` (POSIX columns; where --output is missing)."""
    inode_map: dict[str, tuple[int, int]] = {}
    for line in inodes.splitlines()[1:]:
        f = line.split(None, 5)
        if len(f) == 6:
            inode_map[f[5]] = (_count(f[1]), _count(f[2]))
    mounts = []
    for line in space.splitlines()[1:]:
        f = line.split(None, 6)
        if len(f) < 7 or not f[2].isdigit():
            continue
        total, used = inode_map.get(f[6], (0, 0))
        mounts.append(Mount(f[0], f[6], f[1], int(f[2]), int(f[3]), total, used))
    return mounts


# ------------------------------------------------------------------------------------ ss
def split_address(local: str) -> tuple[str, int] | None:
    """'127.0.0.1:5000', '[::]:22', '*:80', '127.0.0.53%lo:53' -> (address, port)."""
    addr, sep, port = local.rpartition(":")
    if not sep or not port.isdigit():
        return None
    addr = addr.strip("[]").split("%", 1)[0]
    return ("::" if addr == "*" else addr), int(port)  # ss shows a dual-stack [::] socket as *


def parse_ss_listen(text: str) -> Listeners:
    """`ss -ltnH`: State Recv-Q Send-Q Local-Address:Port Peer-Address:Port [Process]."""
    result = Listeners()
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == "LISTEN":
            parsed = split_address(f[3])
            if parsed:
                result.sockets.add(parsed)
    return result


# ------------------------------------------------------------------------------------ ps
_STRIP = "[](){}:,;'\""


# setproctitle titles: `NAME: ROLE (original command line)` or `NAME: ROLE [original command line]`
_TITLE = re.compile(r"^[^\s:]+: .*?\s[\[(](?P<inner>[^\[\]()]+)[\])]\s*$")


@functools.lru_cache(maxsize=8192)  # hosts of one deployment run the same command lines
def command_tokens(args: str, limit: int = 8) -> frozenset[str]:
    """Program-like words of a command line, up to its first option.

    `python3 /venv/bin/nova-compute --config-file x` -> {python3, nova-compute};
    a retitled process counts by the command line in its title: `gunicorn: master [keystone]` -> {keystone},
    `neutron-server: rpc worker (/venv/bin/python3 /venv/bin/neutron-rpc-server --config-file ...)` ->
    {python3, neutron-rpc-server} (neutron titles the rpc-server's workers "neutron-server").
    """
    m = _TITLE.match(args)
    if m:
        args = m.group("inner")
    tokens: set[str] = set()
    for i, word in enumerate(args.split()):
        if i >= limit or (i and word.startswith("-")):
            break
        word = word.strip(_STRIP)
        base = word.rsplit("/", 1)[-1].strip(_STRIP)
        if base.endswith(".py"):
            base = base[:-3]
        if base:
            tokens.add(base)
    return frozenset(tokens)


_PS_LINE = re.compile(r"^\s*(\d+)\s+(\d+) (.{15}) (.*)$")


def parse_ps(text: str) -> list[Proc]:
    """`ps -e -ww -o pid=,ppid=,comm:15=,args=` (comm padded to 15 columns); kernel threads dropped."""
    procs = []
    for line in text.splitlines():
        m = _PS_LINE.match(line)
        if not m:
            continue
        pid, ppid = int(m.group(1)), int(m.group(2))
        if pid == 2 or ppid == 2:  # kthreadd and kernel threads
            continue
        procs.append(Proc(pid, ppid, m.group(3).strip(), m.group(4).strip()))
    return procs


def parse_cpu_list(text: str) -> int:
    """/sys/devices/system/cpu/online ('0-3,8-11') -> number of CPUs."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        count += (int(hi) - int(lo) + 1) if hi else 1
    return count


# ------------------------------------------------------------------------------------ time
_OFFSET = re.compile(r"^([-+]?[0-9.]+(?:e[-+]?\d+)?) seconds (fast|slow)", re.I)


def parse_chronyc_tracking(text: str) -> TimeSync:
    """`chronyc tracking` (human format)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    leap = fields.get("Leap status", "")
    ref = fields.get("Reference ID", "")
    stratum = int(fields["Stratum"]) if fields.get("Stratum", "").isdigit() else None
    offset = None
    m = _OFFSET.match(fields.get("System time", ""))
    if m:
        offset = abs(float(m.group(1)))
    unsynced = leap.lower().startswith("not synchronised") or ref.startswith("00000000") or stratum == 0
    return TimeSync("chronyc", not unsynced and bool(leap), offset, stratum, ref, leap)


def parse_ntpq_rv(text: str) -> TimeSync:
    """`ntpq -n -c 'rv 0 leap,stratum,offset,refid'`: leap=11 means unsynchronised; offset in milliseconds."""
    values = dict(m.groups() for m in re.finditer(r"(\w+)=([^,\s]+)", text))
    leap = values.get("leap", "")
    stratum = int(values["stratum"]) if values.get("stratum", "").isdigit() else None
    offset = abs(float(values["offset"])) / 1000.0 if "offset" in values else None
    synced = leap in ("00", "01", "10") and stratum is not None and stratum < 16
    return TimeSync("ntpq", synced, offset, stratum, values.get("refid", ""), leap)


def parse_timedatectl_show(text: str) -> TimeSync:
    """`timedatectl show` (key=value); systemd-timesyncd or whatever feeds NTPSynchronized."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    synced = values.get("NTPSynchronized", "no") == "yes"
    detail = "NTP service " + ("active" if values.get("NTP") == "yes" else "inactive")
    return TimeSync("timedatectl", synced, None, None, detail, "")


# ------------------------------------------------------------------------------------ systemd
def parse_systemctl_show(text: str) -> dict[str, UnitState]:
    """`systemctl show -p Id,LoadState,ActiveState,SubState,UnitFileState U1 U2 ...` (blocks separated by blank lines).

    Keyed by the unit name as asked (Names are normalised to end in .service).
    """
    units: dict[str, UnitState] = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" not in values:
            continue
        state = UnitState(values["Id"], values.get("LoadState", ""), values.get("ActiveState", ""),
                          values.get("SubState", ""), values.get("UnitFileState", ""))
        units[values["Id"]] = state
    return units


def unit_name(unit: str) -> str:
    return unit if "." in unit else f"{unit}.service"
