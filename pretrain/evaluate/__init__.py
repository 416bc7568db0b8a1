"""Multi-view evaluation: merge views per video, metrics, per-split and 3-split-mean tables."""
