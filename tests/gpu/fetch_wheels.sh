#!/usr/bin/env bash
# Download (here, where the registry is reachable) the wheels a bare GPU machine lacks, for
# tests/gpu/run_on_gpu.sh: the machine has CUDA torch, Lightning, transformers and OpenCV, but not
# deepspeed, webdataset, omegaconf, av (PyAV) or wandb, and no network. Ray is not needed (the smoke
# run and the GPU tests never import it) and would not fit.
#
#   bash tests/gpu/fetch_wheels.sh [DIR]      (default .gpu-wheels/, ignored by git; 64 MiB at most)
#
# Wheels are for CPython 3.12 on manylinux x86-64 (the GPU image's python3). DeepSpeed ships only
# as a source archive, so its wheel is built here without prebuilt ops (DS_BUILD_OPS=0: ops such as
# the CPU Adam of ZeRO-Offload are JIT-compiled there on first use, with its nvcc and ninja).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-.gpu-wheels}
mkdir -p "$dir"
python=${PYTHON:-python3}

# name==version, each pinned to what the CPU suite runs here; the ones without a pin are their needs.
packages=(
  webdataset==1.0.2 braceexpand
  omegaconf==2.4.0
  av==18.1.0
  hjson pydantic pydantic-core annotated-types typing-inspection
  wandb==0.31.0 cwevals==0.0.1b1 distro sniffio platformdirs googleapis-common-protos
  opentelemetry-api opentelemetry-sdk opentelemetry-semantic-conventions opentelemetry-proto
  opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-common
  opentelemetry-exporter-http-transport opentelemetry-exporter-otlp-common
)
platform=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$python" -m pip download -q --no-deps "${platform[@]}" -d "$dir" "${packages[@]}"
if ! ls "$dir"/deepspeed-*.whl >/dev/null 2>&1; then
  DS_BUILD_OPS=0 "$python" -m pip wheel -q --no-deps --no-build-isolation -w "$dir" deepspeed==0.19.8
fi

limit=$((64 * 1024 * 1024))
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
wheels=$(du -cb "$dir"/*.whl | tail -1 | cut -f1)
printf '%s\n' "$dir"/*.whl | xargs -n1 basename
echo "wheels: $((wheels / 1024 / 1024)) MiB, checkout: $((tree / 1024 / 1024)) MiB, limit 64 MiB"
if (( wheels + tree > limit )); then
  echo "fetch_wheels: wheels + checkout exceed 64 MiB: drop wandb (the smoke run then logs without W&B)" >&2
  exit 1
fi
