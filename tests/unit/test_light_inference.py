"""The light inference path: `tubelet explain`, `tubelet predict` and `--stream` on an export run
with torch, the models and the decoder only; no Lightning, DeepSpeed, Ray, W&B or transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pretrain.data.generated.salient_object import salient_object_clip
from pretrain.data.video.write import write_video
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier
from pretrain.weights import save_export

HEAVY = ("pytorch_lightning", "lightning", "deepspeed", "ray", "wandb", "transformers")

SCRIPT = """
import json, sys
from pretrain.cli import main
codes = [main(["explain", sys.argv[1], sys.argv[2], "--out", sys.argv[3]]),
         main(["predict", sys.argv[1], sys.argv[2], "--stream", "--json"]),
         main(["predict", sys.argv[1], sys.argv[2], "--clips", "1", "--crops", "1"])]
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[4])))
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_explain_and_stream_import_no_training_stack(tmp_path):
    spec = ArchSpec.from_size("tiny", img_size=32, num_frames=8, tubelet_size=2, patch_size=8)
    export = save_export(
        VideoClassifier(spec, 3).eval(), None, tmp_path / "model", class_names=["a", "b", "c"]
    )
    video = write_video(tmp_path / "clip.mp4", salient_object_clip(0, seed=1, num_frames=24).frames, fps=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(export), str(video), str(tmp_path / "out"), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"codes": [0, 0, 0], "heavy": []}
    assert (tmp_path / "out" / "saliency.json").is_file()
