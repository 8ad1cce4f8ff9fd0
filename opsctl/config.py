"""One YAML configuration file, validated as a whole: every error is reported with its key path.

Location: `--config`, else `$OPSCTL_CONFIG`, else /etc/opsctl/opsctl.yaml if it exists, else defaults.
Secrets are references (`{file: PATH}` or `{env: NAME}`), resolved on use and masked everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opsctl.components import ROLES
from opsctl.errors import ConfigError
from opsctl.secrets import SecretRef

DEFAULT_PATH = Path("/etc/opsctl/opsctl.yaml")
ENV_VAR = "OPSCTL_CONFIG"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(Strict):
    """A secret by reference: exactly one of `file` or `env`."""

    file: str | None = None
    env: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError("secrets are given by reference: use {file: PATH} or {env: NAME}, not an inline value")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> "Secret":
        if bool(self.file) == bool(self.env):
            raise ValueError("give exactly one of 'file' or 'env'")
        return self

    def resolve(self, key_path: str = "secret") -> str:
        return SecretRef(file=self.file, env=self.env).resolve(key_path)


# ----------------------------------------------------------------------------- inventory
class JumpHost(Strict):
    address: str
    user: str | None = None
    port: int = Field(22, ge=1, le=65535)
    key_file: str | None = None
    known_hosts: str | None = None


class SSH(Strict):
    user: str | None = None
    port: int | None = Field(None, ge=1, le=65535)
    key_file: str | None = None
    known_hosts: str | None = None
    connect_timeout: float | None = Field(None, gt=0)
    jump: JumpHost | str | None = None
    become: bool | None = None  # commands and file reads through `sudo -n` (login user is not root)


class HostEntry(Strict):
    address: str | None = None
    roles: list[str] = []
    local: bool = False
    ssh: SSH | None = None
    labels: dict[str, str] = {}

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        bad = [r for r in roles if r not in ROLES]
        if bad:
            raise ValueError(f"unknown role(s) {', '.join(bad)}; roles are {', '.join(ROLES)}")
        return roles


class InventoryDefaults(Strict):
    ssh: SSH = SSH()


class InventorySection(Strict):
    ansible_ini: str | None = None  # kolla-ansible / OpenStack-Ansible inventory to import
    defaults: InventoryDefaults = InventoryDefaults()
    hosts: dict[str, HostEntry] = {}
    concurrency: int = Field(16, ge=1, le=512)


# ----------------------------------------------------------------------------- cloud & infra
class CloudSection(Strict):
    clouds: list[str] = []  # names in clouds.yaml; empty: OS_CLOUD / OS_* environment
    api_timeout: float = Field(10.0, gt=0)
    interface: Literal["public", "internal", "admin"] | None = None
    region: str | None = None


class DatabaseSection(Strict):
    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    socket: str | None = None
    user: str = "root"
    password: Secret | None = None
    connect_timeout: float = Field(5.0, gt=0)
    galera_expected_size: int | None = Field(None, ge=1)


class RabbitSection(Strict):
    management_url: str | None = None  # e.g. http://127.0.0.1:15672
    user: str = "guest"
    password: Secret | None = None
    rabbitmqctl: list[str] = ["rabbitmqctl"]  # argv prefix, e.g. [docker, exec, rabbitmq, rabbitmqctl]
    timeout: float = Field(10.0, gt=0)


class MemcachedSection(Strict):
    servers: list[str] = ["127.0.0.1:11211"]
    timeout: float = Field(3.0, gt=0)  # connect and read timeout per server, seconds


class CheckSection(Strict):
    timeout: float = Field(60.0, gt=0)
    concurrency: int = Field(8, ge=1, le=256)
    disabled: list[str] = []
    thresholds: dict[str, dict[str, Any]] = {}
    profiles: dict[str, list[str]] = {}


class ComponentService(Strict):
    roles: list[str] | None = None
    processes: list[str] | None = None
    units: list[str] | None = None
    ports: list[int] | None = None
    logs: list[str] | None = None
    nofile_min: int | None = None
    restart: list[str] | None = None  # argv, e.g. [docker, restart, nova_compute]
    optional: bool | None = None


class ComponentOverride(Strict):
    services: dict[str, ComponentService] = {}
    config_dirs: list[str] | None = None
    state_dirs: list[str] | None = None
    key_dirs: list[str] | None = None
    databases: list[str] | None = None
    api_service_type: str | None = None
    log_dirs: list[str] | None = None


# Sections owned by the feature modules (logs, backup, exporter, elasticsearch, runbooks).
class LogsSection(Strict):
    state_dir: str = "/var/lib/opsctl/logs"
    max_line_bytes: int = Field(1 << 20, ge=1024)
    workers: int | None = Field(None, ge=1, le=64)  # processes scanning local files (default: CPU count)
    ship_settle_seconds: float = Field(5.0, ge=0)  # a file's last event is shipped once it is this old
    timezone: str | None = None  # zone of the naive timestamps in the logs (IANA name); default: this machine's
    # services that log to journald (OpenStack-Ansible, devstack): read with journalctl on hosts where none of
    # the selected services has a log file (auto), also for the services without files (always), or never
    journal: Literal["auto", "always", "never"] = "auto"


class ElasticsearchSection(Strict):
    url: str | None = None
    index: str = "opsctl-logs"
    results_index: str = "opsctl-checks"
    api_key: Secret | None = None
    user: str | None = None
    password: Secret | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    timeout: float = Field(30.0, gt=0)
    bulk_size: int = Field(500, ge=1, le=10000)  # documents per bulk request (and per checkpoint commit)


class ExporterSection(Strict):
    listen: str = "127.0.0.1"
    port: int = Field(9180, ge=1, le=65535)
    refresh_interval: float = Field(60.0, gt=0)
    checks: bool = True
    checks_interval: float | None = Field(None, gt=0)  # default: refresh_interval
    collector_timeout: float = Field(50.0, gt=0)  # one collection's deadline; it then marks itself failed
    max_cache_age: float | None = Field(None, gt=0)  # older cached data is dropped (default: 5 x interval)
    disabled_collectors: list[str] = []  # e.g. [placement, checks, rabbitmq]


class BackupSchedule(Strict):
    """One timetable entry: `every` day/hour/<weekday>/minutes, `at` HH:MM (or :MM), what to run."""

    every: Literal["second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "monday", "tuesday", "wednesday", "thursday",
                   "friday", "saturday", "sunday"] = "day"
    interval: int = Field(1, ge=1)
    at: str | None = None
    run: Literal["backup", "check", "prune", "verify"] = "backup"
    args: list[str] = []  # extra opsctl arguments for this job, e.g. [--component, keystone]


class BackupSection(Strict):
    store: str = "/var/backups/opsctl"
    components: list[str] = []
    retention: dict[str, int] = {"daily": 7, "weekly": 4, "monthly": 6}
    compression: Literal["zstd", "gzip", "pigz", "none"] = "zstd"
    compression_level: int | None = Field(None, ge=1, le=19)
    remote: str | None = None  # rsync destination (e.g. backup@vault:/srv/opsctl), pushed after each run
    remote_ssh: list[str] = ["ssh", "-o", "BatchMode=yes"]  # rsync -e argv for the remote store
    database_nodes: list[str] = []  # Galera nodes host[:port]; a Synced non-writer node is preferred
    physical: Literal["none", "full", "incremental"] = "none"  # mariabackup in addition to logical dumps
    include_images: bool = False  # glance file-store images
    excludes: list[str] = ["*.pyc", "*.swp", "*~", "__pycache__"]
    table_checksums: bool = True  # CHECKSUM TABLE + row counts in the manifest (used by `backup verify`)
    schedule: list[BackupSchedule] = []


class RunbookSection(Strict):
    audit_log: str = "/var/log/opsctl/runbooks.log"
    openstack_cli: list[str] = ["openstack"]  # argv prefix for {openstack}; --os-cloud added from cloud.clouds
    mysql_cli: list[str] = ["mysql"]  # argv prefix for {mysql}, e.g. [mysql, --defaults-file=/root/.my.cnf]
    mysql_datadir: str = "/var/lib/mysql"  # where grastate.dat / gvwstate.dat live
    galera_bootstrap: list[str] = ["galera_new_cluster"]  # argv that bootstraps a new Galera cluster on a node
    verify_timeout: float | None = Field(None, gt=0, le=1800)  # override every runbook's re-check time limit


class Config(Strict):
    inventory: InventorySection = InventorySection()
    cloud: CloudSection = CloudSection()
    database: DatabaseSection = DatabaseSection()
    rabbitmq: RabbitSection = RabbitSection()
    memcached: MemcachedSection = MemcachedSection()
    checks: CheckSection = CheckSection()
    components: dict[str, ComponentOverride] = {}
    logs: LogsSection = LogsSection()
    elasticsearch: ElasticsearchSection = ElasticsearchSection()
    exporter: ExporterSection = ExporterSection()
    backup: BackupSection = BackupSection()
    runbooks: RunbookSection = RunbookSection()

    def component_overrides(self) -> dict[str, dict[str, Any]]:
        return {name: c.model_dump(exclude_none=True, exclude_defaults=True) for name, c in self.components.items()}


def _format_errors(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{path}: {msg}")
    return problems


def parse(data: Any, source: str = "<config>") -> Config:
    """Validate a loaded YAML document; raise ConfigError listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        problems = _format_errors(err)
        raise ConfigError(f"{source}: {len(problems)} configuration error(s)", problems) from None


def resolve_path(explicit: str | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return DEFAULT_PATH if DEFAULT_PATH.exists() else None


def load(explicit: str | None = None) -> tuple[Config, Path | None]:
    """Load and validate the configuration; defaults when no file is configured."""
    path = resolve_path(explicit)
    if path is None:
        return Config(), None
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}", hint=f"pass --config or set {ENV_VAR}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    return parse(data, str(path)), path
