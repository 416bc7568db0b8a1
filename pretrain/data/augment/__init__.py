"""From decoded frames to clips: temporal sampling, crops and flips, RandAugment, mixup/cutmix."""
