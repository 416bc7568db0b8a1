"""A real Ray cluster on this machine for tests: `ray start --head` (+ `ray start --address` nodes).

Several engineers' clusters share the machine, so every port is chosen free, the temp dir is the
test's own, and stopping kills only this cluster's processes (those whose command line names our
temp dir, and their descendants) — never a global `ray stop`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_range(size: int) -> tuple[int, int]:
    """A run of `size` free ports in 20000-32767, below Linux's ephemeral range (32768+), so that
    no port `free_port()` hands out (for GCS, dashboard, agents) can fall inside it."""
    first = 20000 + (os.getpid() % 100) * 120
    for start in [*range(first, 32768 - size, size), *range(20000, first, size)]:
        if all(_is_free(port) for port in range(start, start + size)):
            return start, start + size - 1
    raise RuntimeError("no free port range for Ray workers")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_env(auth_mode: str = "disabled") -> dict[str, str]:
    """Environment for the Ray processes: this venv first on PATH (so jobs find `tubelet`)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = auth_mode
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("DS_ACCELERATOR", "cpu")
    return env


class LocalRayCluster:
    """Head (+ extra nodes) started with the Ray CLI under `root`; `stop()` ends only them."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        # Ray's unix socket paths must stay short: keep the temp dir name short.
        self.temp_dir = Path(root) / "r"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.env = env or cluster_env()
        self.gcs_address: str | None = None
        self.dashboard_url: str | None = None

    def start_head(self, num_cpus: int = 1, dashboard: bool = True) -> None:
        gcs_port, dashboard_port = free_port(), free_port()
        low, high = free_port_range(40)
        args = [
            "--head",
            f"--port={gcs_port}",
            f"--include-dashboard={str(dashboard).lower()}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            f"--min-worker-port={low}",
            f"--max-worker-port={high}",
        ]
        self._ray_start(args, num_cpus)
        self.gcs_address = f"127.0.0.1:{gcs_port}"
        self.dashboard_url = f"http://127.0.0.1:{dashboard_port}"

    def add_node(self, num_cpus: int = 1) -> None:
        assert self.gcs_address, "start the head first"
        low, high = free_port_range(40)
        self._ray_start(
            [f"--address={self.gcs_address}", f"--min-worker-port={low}", f"--max-worker-port={high}"],
            num_cpus,
        )

    def _ray_start(self, args: list[str], num_cpus: int) -> None:
        ports = [
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
        ]
        command = [
            RAY,
            "start",
            *args,
            *ports,
            f"--num-cpus={num_cpus}",
            "--num-gpus=0",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
            "--object-store-memory=100000000",
        ]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def processes(self) -> list[psutil.Process]:
        """This cluster's processes: those naming our temp dir, and everything they started."""
        marker = str(self.temp_dir)
        roots = []
        for process in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in part for part in process.info["cmdline"] or ()):
                    roots.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        found = {p.pid: p for p in roots}
        for root in roots:
            try:
                found.update({c.pid: c for c in root.children(recursive=True)})
            except psutil.NoSuchProcess:
                continue
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self, grace_s: float = 10.0) -> None:
        processes = self.processes()
        for process in processes:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(processes, timeout=grace_s)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        time.sleep(0.2)
