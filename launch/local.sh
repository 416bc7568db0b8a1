#!/usr/bin/env bash
# Run a stage on this machine.
#
#   launch/local.sh pretrain pretrain/tiny [key=value ...]        # Lightning alone
#   DEVICES=4 launch/local.sh pretrain RECIPE [...]                # 4 local processes (DDP / ZeRO)
#   LAUNCHER=ray NUM_WORKERS=2 launch/local.sh pretrain RECIPE     # Ray Train on a local Ray
#
# W&B logs offline unless WANDB_MODE says otherwise (`wandb sync runs/...` uploads later).
set -euo pipefail

if [[ $# -lt 2 || ( "$1" != pretrain && "$1" != finetune ) ]]; then
  echo "usage: $0 pretrain|finetune RECIPE [key=value ...]" >&2
  exit 2
fi
stage=$1
recipe=$2
shift 2

export WANDB_MODE=${WANDB_MODE:-offline}
if [[ "${LAUNCHER:-local}" == ray ]]; then
  placement=(cluster.launcher=ray cluster.num_workers="${NUM_WORKERS:-1}")
else
  placement=(trainer.devices="${DEVICES:-1}")
fi

exec tubelet "$stage" "$recipe" "${placement[@]}" "$@"
