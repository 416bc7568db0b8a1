"""`tubelet quickstart`: the whole path from synthetic video to a results table on one machine."""

from pretrain.quickstart.flow import QuickstartPlan, QuickstartResult, run_quickstart

__all__ = ["QuickstartPlan", "QuickstartResult", "run_quickstart"]
