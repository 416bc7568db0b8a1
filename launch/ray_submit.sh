#!/usr/bin/env bash
# Submit a pretraining or fine-tuning run to a Ray cluster through the Ray Jobs API.
#
#   launch/ray_submit.sh pretrain RECIPE [key=value ...]
#   launch/ray_submit.sh finetune RECIPE finetune.init=/mnt/tubelet/exports/vit_b.safetensors [...]
#
# Environment (all optional):
#   RAY_API_SERVER_ADDRESS  Jobs API, default http://127.0.0.1:8265 (`ray dashboard cluster/aws.yaml`
#                           or `kubectl port-forward svc/tubelet-head-svc 8265:8265` tunnels there)
#   NUM_WORKERS             Ray Train workers = GPUs used (default 8)
#   STORAGE_PATH            checkpoint storage every node sees (default /mnt/tubelet/ray_results)
#   NO_WAIT=1               print the job id and return instead of following the logs
# The checkout this script lives in is uploaded as the job's working dir, so the cluster runs this
# code. Secrets are not forwarded: provision them on the cluster (cluster/README.md).
set -euo pipefail

if [[ $# -lt 2 || ( "$1" != pretrain && "$1" != finetune ) ]]; then
  echo "usage: $0 pretrain|finetune RECIPE [key=value ...]" >&2
  exit 2
fi
stage=$1
recipe=$2
shift 2

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
address=${RAY_API_SERVER_ADDRESS:-http://127.0.0.1:8265}
submit_flags=(--address "$address" --working-dir "$repo")
if [[ "${NO_WAIT:-0}" == 1 ]]; then
  submit_flags+=(--no-wait)
fi

# Ray Train places one process per worker: recipes written for `trainer.devices=8 num_nodes=8`
# run unchanged once those are reset to 1 (the world size is cluster.num_workers).
exec tubelet submit "${submit_flags[@]}" -- "$stage" "$recipe" \
  trainer.devices=1 trainer.num_nodes=1 \
  cluster.launcher=ray \
  cluster.num_workers="${NUM_WORKERS:-8}" \
  cluster.use_gpu=true \
  cluster.storage_path="${STORAGE_PATH:-/mnt/tubelet/ray_results}" \
  "$@"
