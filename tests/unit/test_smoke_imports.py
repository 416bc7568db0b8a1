"""The bare GPU machine has no Ray: everything the smoke run, the GPU tests and the benchmarks of
`tests/gpu/run_on_gpu.sh` import must work with `import ray` failing."""

import subprocess
import sys

MODULES = (
    "pretrain.cli",
    "pretrain.smoke.run",
    "pretrain.smoke.pretraining",
    "pretrain.smoke.downstream",
    "pretrain.train.entry",
    "pretrain.train.pretrain_stage",
    "pretrain.train.finetune_stage",
    "pretrain.evaluate.run",
    "pretrain.evaluate.predict",
    "pretrain.bench.model",
    "pretrain.bench.cores",
)

PROGRAM = f"""
import importlib, sys
class NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("no ray here")
sys.meta_path.insert(0, NoRay())
for name in {MODULES!r}:
    importlib.import_module(name)
from pretrain.cli import build_parser
build_parser().parse_args(["smoke", "--device", "cpu"])
assert not any(m == "ray" or m.startswith("ray.") for m in sys.modules), "ray was imported"
print("ok")
"""


def test_the_smoke_path_imports_without_ray():
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
