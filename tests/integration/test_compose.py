"""docker-compose.yml: `docker-compose config` validates it with a generated .env; every service binds loopback
only; credentials come from .env (a missing one stops compose, naming it); env and volumes match the README."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer"}
SERVICES = AIRFLOW_SERVICES | {"airflow-db", "influxdb", "grafana", "prometheus", "demo", "demo-redis", "demo-db",
                               "demo-proxy"}
SECRET_KEYS = {"AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_DB_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
               "AIRFLOW_SECRET_KEY", "INFLUXDB_ADMIN_PASSWORD", "INFLUXDB_USER_PASSWORD",
               "INFLUXDB_READ_USER_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "DEMO_DB_PASSWORD"}


def _compose(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", "PWD": str(ROOT)})


@pytest.fixture(scope="module")
def env_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("compose") / "env"
    made = subprocess.run(["bash", str(ROOT / "docker" / "make-env.sh"), str(path)], capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin", "PERFPIPE_ADMIN_USER": "alice"})
    assert made.returncode == 0, made.stderr
    return path


@pytest.fixture(scope="module")
def config(env_file) -> dict:
    """`docker-compose config` (profiles included) as parsed YAML."""
    rendered = _compose("--env-file", str(env_file), "--profile", "prometheus", "config")
    assert rendered.returncode == 0, rendered.stderr
    return yaml.safe_load(rendered.stdout)


def _env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z0-9_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    return dict(pairs)


def _volume(spec) -> tuple[str, str, str]:
    """(source, target, mode) of a volume as `docker-compose config` prints it ("src:dst:mode" or a mapping)."""
    if isinstance(spec, dict):
        return spec["source"], spec["target"], "ro" if spec.get("read_only") else "rw"
    source, target, *mode = spec.split(":")
    return source, target, (mode or ["rw"])[0]


def _readme_section() -> str:
    text = README.read_text()
    start = text.index("## Containerised stack (docker-compose)")
    return text[start:]


def test_compose_config_validates(config):
    assert set(config["services"]) == SERVICES


def test_every_service_is_on_the_host_network_and_binds_loopback(config):
    services = config["services"]
    for name, service in services.items():
        assert service.get("network_mode") == "host", name
        assert "ports" not in service, f"{name} publishes ports"
    influx = services["influxdb"]["environment"]
    assert influx["INFLUXDB_HTTP_BIND_ADDRESS"].startswith("127.0.0.1:")
    assert influx["INFLUXDB_BIND_ADDRESS"].startswith("127.0.0.1:")
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert services["airflow-apiserver"]["command"][:4] == ["airflow", "api-server", "--host", "127.0.0.1"]
    assert "--skip-serve-logs" in services["airflow-scheduler"]["command"]
    assert "--skip-serve-logs" in services["airflow-triggerer"]["command"]
    for name in ("airflow-db", "demo-db"):
        assert "listen_addresses=127.0.0.1" in services[name]["command"], name
    assert services["demo-redis"]["command"][1:3] == ["--bind", "127.0.0.1"]
    assert any(arg.startswith("--web.listen-address=127.0.0.1:") for arg in services["prometheus"]["command"])
    demo = services["demo"]["command"]
    assert demo[demo.index("--host") + 1] == "127.0.0.1"
    proxy = services["demo-proxy"]["command"]
    for flag in ("--listen", "--upstream", "--control"):
        assert proxy[proxy.index(flag) + 1].startswith("127.0.0.1:"), flag


def test_influxdb_is_1_8_with_auth_database_k6_and_no_body_limit(config):
    influx = config["services"]["influxdb"]
    assert influx["image"].startswith("influxdb:1.8")
    env = influx["environment"]
    assert env["INFLUXDB_DB"] == "k6"
    assert env["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    assert env["INFLUXDB_HTTP_MAX_BODY_SIZE"] == "0"
    assert env["INFLUXDB_REPORTING_DISABLED"] == "true"


def test_airflow_components_share_one_postgres_metadata_db(config, env_file):
    services = config["services"]
    env = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", env_file.read_text(), re.MULTILINE))
    expected = (f"postgresql+psycopg2://{env['AIRFLOW_DB_USER']}:{env['AIRFLOW_DB_PASSWORD']}@127.0.0.1:"
                f"{env['AIRFLOW_DB_PORT']}/{env['AIRFLOW_DB_NAME']}")
    for name in AIRFLOW_SERVICES:
        service_env = services[name]["environment"]
        assert service_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == expected, name
        assert service_env["PERFPIPE_INFLUXDB_USER"] == env["INFLUXDB_USER"]
        assert service_env["PERFPIPE_INFLUXDB_PASSWORD"] == env["INFLUXDB_USER_PASSWORD"]
        assert service_env["AIRFLOW__CORE__FERNET_KEY"] == env["AIRFLOW_FERNET_KEY"]
    commands = {name: " ".join(services[name].get("command") or []) for name in AIRFLOW_SERVICES}
    assert "airflow scheduler" in commands["airflow-scheduler"]
    assert "airflow dag-processor" in commands["airflow-dag-processor"]
    assert "airflow triggerer" in commands["airflow-triggerer"]
    assert "airflow db migrate" in commands["airflow-init"]


def test_grafana_gets_provisioning_and_datasource_credentials(config, env_file):
    grafana = config["services"]["grafana"]
    env = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", env_file.read_text(), re.MULTILINE))
    assert grafana["environment"]["GF_SECURITY_ADMIN_USER"] == "alice"
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == env["GRAFANA_ADMIN_PASSWORD"]
    assert grafana["environment"]["INFLUXDB_READ_USER_PASSWORD"] == env["INFLUXDB_READ_USER_PASSWORD"]
    mounts = {target: (source, mode) for source, target, mode in map(_volume, grafana["volumes"])}
    assert mounts["/etc/grafana/provisioning"] == (str(ROOT / "grafana" / "provisioning"), "ro")
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/perfpipe.yaml").read_text())["providers"][0]
    assert mounts[provider["options"]["path"]] == (str(ROOT / "grafana" / "dashboards"), "ro")
    # Every ${VAR} the datasource file reads is set on the Grafana service.
    datasource_yaml = (ROOT / "grafana/provisioning/datasources/influxdb.yaml").read_text()
    datasource_vars = set(re.findall(r"\$\{(\w+)\}", re.sub(r"#.*", "", datasource_yaml)))
    assert datasource_vars and datasource_vars <= set(grafana["environment"])


def test_data_and_logs_persist_under_data_and_log(config):
    sources = {_volume(v)[0] for service in config["services"].values() for v in service.get("volumes", [])}
    for path in ("data/grafana", "data/influxdb", "data/airflow-db", "log/airflow", "log/grafana"):
        assert str(ROOT / path) in sources, path
    gitignored = (ROOT / ".gitignore").read_text().split()
    assert {"data/", "log/", ".env"} <= set(gitignored)


def test_prometheus_is_optional_with_the_remote_write_receiver(config):
    prometheus = config["services"]["prometheus"]
    assert prometheus["profiles"] == ["prometheus"]  # started only with --profile prometheus
    assert "--web.enable-remote-write-receiver" in prometheus["command"]
    assert all("profiles" not in service for name, service in config["services"].items() if name != "prometheus")


def test_a_missing_secret_stops_compose_naming_it(tmp_path):
    empty = tmp_path / "env"
    empty.write_text(ENV_EXAMPLE.read_text())  # the example as shipped: every secret empty
    rendered = _compose("--env-file", str(empty), "config")
    assert rendered.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", rendered.stderr), rendered.stderr


def test_no_credential_in_the_compose_file_or_the_example():
    compose_text = COMPOSE_FILE.read_text()
    assert "admin/admin" not in compose_text
    for key, value in _env_example().items():
        if key in SECRET_KEYS or key.endswith("_ADMIN_USER"):
            assert value == "", f".env.example ships a value for {key}"
    for line in compose_text.splitlines():
        match = re.match(r"\s*([A-Z_]*(PASSWORD|SECRET|FERNET_KEY)[A-Z_]*):\s*(.*)$", line)
        if match and not match.group(1).endswith("_FILE"):
            assert match.group(3).strip().strip('"').startswith("${"), f"literal secret in: {line.strip()}"


def test_every_compose_variable_is_in_the_env_example_and_the_readme():
    used = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text())) - {"PWD"}
    example = set(_env_example())
    assert used <= example, f"not in .env.example: {sorted(used - example)}"
    section = _readme_section()
    missing = sorted(key for key in example if key not in section)
    assert not missing, f"README's compose section does not explain: {missing}"
    for path in ("./data/grafana", "./data/influxdb", "./log"):
        assert path in section, path


def test_make_env_writes_every_value_and_refuses_to_overwrite(env_file):
    values = dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", env_file.read_text(), re.MULTILINE))
    assert set(values) == set(_env_example())
    assert all(values[key] for key in values), [k for k, v in values.items() if not v]
    assert len({values[k] for k in SECRET_KEYS}) == len(SECRET_KEYS)  # every secret its own
    assert values["AIRFLOW_ADMIN_USER"] == values["GRAFANA_ADMIN_USER"] == "alice"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    again = subprocess.run(["bash", str(ROOT / "docker" / "make-env.sh"), str(env_file)], capture_output=True,
                           text=True, timeout=30)
    assert again.returncode == 1 and "not overwriting" in again.stderr
