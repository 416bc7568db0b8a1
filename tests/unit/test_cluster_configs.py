"""cluster/: the `ray up` YAMLs pass Ray's own validation, the KubeRay manifests carry the fields
KubeRay needs, and every shipped config keeps the dashboard / Jobs API and secrets private."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from pretrain.config import load_config

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
RAY_UP = sorted(CLUSTER.glob("*.yaml"))
KUBERAY = sorted((CLUSTER / "kuberay").glob("*.yaml"))


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _ray_clusters(path: Path) -> list[dict]:
    """RayCluster specs in a manifest: RayCluster.spec and RayJob.spec.rayClusterSpec."""
    specs = []
    for doc in _documents(path):
        if doc["kind"] == "RayCluster":
            specs.append(doc["spec"])
        elif doc["kind"] == "RayJob":
            specs.append(doc["spec"]["rayClusterSpec"])
    return specs


def _containers(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_the_expected_files_are_shipped():
    assert [p.name for p in RAY_UP] == ["aws.yaml", "gcp.yaml"]
    assert [p.name for p in KUBERAY] == ["raycluster.yaml", "rayjob.yaml", "storage.yaml"]
    assert (CLUSTER / "README.md").is_file()


@pytest.mark.parametrize("path", RAY_UP + KUBERAY, ids=lambda p: p.name)
def test_every_yaml_parses(path):
    assert _documents(path)


@pytest.mark.parametrize("path", RAY_UP, ids=lambda p: p.name)
def test_ray_up_yaml_passes_rays_own_validation(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(path.read_text())
    validate_config(raw)  # ray-schema.json shipped with Ray
    prepared = prepare_config(raw)  # merged with the provider's defaults, as `ray up` does
    validate_config(prepared)
    node_types = prepared["available_node_types"]
    assert prepared["provider"]["type"] == path.stem
    assert node_types[prepared["head_node_type"]]["resources"] == {"CPU": 0}
    workers = [t for name, t in node_types.items() if name != prepared["head_node_type"]]
    assert len(workers) >= 2
    assert all(t["min_workers"] == 0 and t["max_workers"] > 0 for t in workers)  # autoscaling
    assert prepared["docker"]["worker_image"].endswith("-gpu")


@pytest.mark.parametrize("path", RAY_UP, ids=lambda p: p.name)
def test_ray_up_installs_tubelet_with_the_right_torch_and_mounts_storage(path):
    config = yaml.safe_load(path.read_text())
    head, worker = config["head_setup_commands"], config["worker_setup_commands"]
    assert any("torch==" in c and "whl/cpu" in c for c in head)  # CPU-only head
    assert any("torch==" in c and "whl/cpu" not in c for c in worker)  # CUDA build from PyPI
    assert all(any("pip install -q -e ~/tubelet" in c for c in cmds) for cmds in (head, worker))
    assert config["file_mounts"]["~/tubelet"] == "."
    assert {"**/.git", "**/.venv", "**/runs"} <= set(config["rsync_exclude"])
    assert any("mount" in c and "/mnt/tubelet" in c for c in config["initialization_commands"])
    assert "--volume=/mnt/tubelet:/mnt/tubelet" in config["docker"]["run_options"]


@pytest.mark.parametrize("path", RAY_UP, ids=lambda p: p.name)
def test_ray_up_dashboard_is_loopback_only_with_token_auth(path):
    config = yaml.safe_load(path.read_text())
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "0.0.0.0" not in path.read_text()
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("export RAY_AUTH_MODE=token" in c for c in starts)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "8265" not in str(config["provider"].get("security_group", ""))


@pytest.mark.parametrize("path", RAY_UP, ids=lambda p: p.name)
def test_ray_up_wandb_key_comes_from_a_secret_store_not_a_literal(path):
    text = path.read_text()
    assert not re.search(r"WANDB_API_KEY=[\"']?[A-Za-z0-9]", text)  # never a literal value
    assert 'export WANDB_API_KEY="$(cat /opt/tubelet-secrets/wandb_api_key)"' in text
    fetch = " ".join(yaml.safe_load(text)["initialization_commands"])
    assert ("secretsmanager get-secret-value" in fetch) or ("gcloud secrets versions access" in fetch)


@pytest.mark.parametrize("path", RAY_UP + KUBERAY, ids=lambda p: p.name)
def test_checkpoint_store_and_wandb_key_are_private_to_the_job_user(path):
    """Nobody else on a node may plant a checkpoint (a pickle that runs code) or read the W&B key."""
    text = path.read_text()
    assert not re.search(r"chmod\s+(-R\s+)?(1?777|[0-7]*[2367]\b|[augo]*\+[rwxt]*w)", text)
    assert not re.search(
        r"install\s[^\n]*-m\s*0?[0-7][0-7][1-7][0-7]?\b", text
    )  # no other/group bits on files
    if path in RAY_UP:
        init = " ".join(yaml.safe_load(text)["initialization_commands"])
        assert 'sudo chown "$(id -u):$(id -g)" /mnt/tubelet && sudo chmod 0700 /mnt/tubelet' in init
        assert 'sudo install -d -m 0700 -o "$(id -u)" -g "$(id -g)" /opt/tubelet-secrets' in init
        assert (
            'sudo install -m 0400 -o "$(id -u)" -g "$(id -g)" /tmp/wandb_api_key '
            "/opt/tubelet-secrets/wandb_api_key"
        ) in init


@pytest.mark.parametrize("path", [p for p in KUBERAY if p.name != "storage.yaml"], ids=lambda p: p.name)
def test_kuberay_manifest_has_the_required_fields(path):
    (doc,) = _documents(path)
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] in ("RayCluster", "RayJob")
    (spec,) = _ray_clusters(path)
    assert spec["rayVersion"] == "2.60.0"
    assert isinstance(spec["headGroupSpec"]["rayStartParams"], dict)
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        (container,) = group["template"]["spec"]["containers"]
        gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
        assert gpus >= 1 and container["resources"]["requests"]["nvidia.com/gpu"] == str(gpus)
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/mnt/tubelet" in mounts  # shared checkpoint storage on every worker


def test_rayjob_entrypoint_is_a_valid_tubelet_ray_run():
    (doc,) = _documents(CLUSTER / "kuberay" / "rayjob.yaml")
    spec = doc["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[:2] == ["tubelet", "pretrain"]
    config = load_config(words[2], words[3:])  # the recipe and every override are valid
    assert config.cluster.launcher == "ray"
    assert config.cluster.storage_path.startswith("/mnt/tubelet/")
    assert config.trainer.output_dir.startswith("/mnt/tubelet/")  # ZeRO shards of every rank meet here
    # The cluster the RayJob creates holds every Ray Train worker the entrypoint asks for.
    groups = spec["rayClusterSpec"]["workerGroupSpecs"]
    gpus = sum(
        g["replicas"] * int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        for g in groups
    )
    assert config.cluster.use_gpu and gpus >= config.cluster.num_workers * config.cluster.gpus_per_worker
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["submissionMode"] == "K8sJobMode"


@pytest.mark.parametrize("path", [p for p in KUBERAY if p.name != "storage.yaml"], ids=lambda p: p.name)
def test_kuberay_is_private_and_token_authenticated(path):
    values = yaml.safe_dump(_documents(path))  # the manifest's data, without its comments
    assert "LoadBalancer" not in values and "NodePort" not in values and "Ingress" not in values
    (spec,) = _ray_clusters(path)
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"
    assert spec["authOptions"] == {"mode": "token"}


@pytest.mark.parametrize("path", [p for p in KUBERAY if p.name != "storage.yaml"], ids=lambda p: p.name)
def test_kuberay_wandb_key_comes_from_a_kubernetes_secret(path):
    (spec,) = _ray_clusters(path)
    for container in _containers(spec):
        env = {e["name"]: e for e in container["env"]}
        key = env["WANDB_API_KEY"]
        assert "value" not in key
        assert key["valueFrom"]["secretKeyRef"] == {
            "name": "tubelet-wandb",
            "key": "api-key",
            "optional": True,
        }
    assert "WANDB_API_KEY" not in _documents(path)[0]["spec"].get("entrypoint", "")


def test_shared_storage_claim_is_read_write_many():
    (claim,) = _documents(CLUSTER / "kuberay" / "storage.yaml")
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["metadata"]["name"] == "tubelet-checkpoints"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_readme_lists_every_placeholder_to_replace():
    readme = (CLUSTER / "README.md").read_text()
    files = RAY_UP + KUBERAY + [CLUSTER / "Dockerfile"]
    placeholders = {m for p in files for m in re.findall(r"REPLACE_[A-Z0-9_]+", p.read_text())}
    assert placeholders
    missing = sorted(p for p in placeholders if p not in readme)
    assert not missing, f"cluster/README.md does not explain {missing}"
    for path in files:
        assert path.name in readme
