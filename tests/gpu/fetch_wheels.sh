#!/usr/bin/env bash
# Download (here, where the registry is reachable) the wheels a bare GPU machine lacks, for
# tests/gpu/run_on_gpu.sh: the machine has CUDA torch, Lightning, transformers and OpenCV, but not
# deepspeed, webdataset, omegaconf, av (PyAV) or wandb, and no network. Ray is not needed (the smoke
# run and the GPU tests never import it) and would not fit.
#
#   bash tests/gpu/fetch_wheels.sh [--gpu-decode] [DIR]   (default .gpu-wheels/, ignored by git; 64 MiB at most)
#
# --gpu-decode also carries PyNvVideoCodec (data.decode_device=cuda, tests/gpu/test_gpu_decode.py),
# trimmed of its samples, benchmarks and bundled FFmpeg source (26 -> 10 MiB; the installed module
# needs none of them), and leaves wandb out to stay under 64 MiB (the smoke run then logs without W&B).
#
# Wheels are for CPython 3.12 on manylinux x86-64 (the GPU image's python3). DeepSpeed ships only
# as a source archive, so its wheel is built here without prebuilt ops (DS_BUILD_OPS=0: ops such as
# the CPU Adam of ZeRO-Offload are JIT-compiled there on first use, with its nvcc and ninja).
set -euo pipefail
cd "$(dirname "$0")/../.."
gpu_decode=0
[[ "${1:-}" == "--gpu-decode" ]] && { gpu_decode=1; shift; }
dir=${1:-.gpu-wheels}
mkdir -p "$dir"
python=${PYTHON:-python3}

# name==version, each pinned to what the CPU suite runs here; the ones without a pin are their needs.
packages=(
  webdataset==1.0.2 braceexpand
  omegaconf==2.4.0
  av==18.1.0
  hjson pydantic pydantic-core annotated-types typing-inspection
)
wandb=(
  wandb==0.31.0 cwevals==0.0.1b1 distro sniffio platformdirs googleapis-common-protos
  opentelemetry-api opentelemetry-sdk opentelemetry-semantic-conventions opentelemetry-proto
  opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-common
  opentelemetry-exporter-http-transport opentelemetry-exporter-otlp-common
)
if (( gpu_decode )); then
  rm -f "$dir"/wandb-*.whl
  packages+=(pynvvideocodec==2.2.4)
else
  packages+=("${wandb[@]}")
fi
platform=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$python" -m pip download -q --no-deps "${platform[@]}" -d "$dir" "${packages[@]}"
if (( gpu_decode )); then  # drop what the installed module never reads; RECORD keeps only what stays
  "$python" - "$dir"/pynvvideocodec-*.whl <<'PY'
import sys, zipfile
path = sys.argv[1]
drop = lambda name: name.startswith(("samples/", "benchmarks/")) or "/external/ffmpeg/src/" in name
with zipfile.ZipFile(path) as wheel:
    items = [(info, wheel.read(info)) for info in wheel.infolist() if not drop(info.filename)]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
    for info, data in items:
        if info.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(line for line in lines if not drop(line.split(",")[0])).encode()
        wheel.writestr(info, data)
PY
fi
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
