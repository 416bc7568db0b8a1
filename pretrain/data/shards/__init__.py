"""WebDataset shards built from raw video corpora (folder, UCF101, HMDB51).

Public API: `build_shards`, `read_manifest`, `inspect_shards`, `verify_shards`; the sample and
manifest contract is written down in `pretrain.data.shards.manifest`.
"""

from pretrain.data.shards.build import BuildOptions, BuildSummary, build_shards
from pretrain.data.shards.errors import ShardsError
from pretrain.data.shards.inspection import Inspection, inspect_shards
from pretrain.data.shards.manifest import (
    Manifest,
    ShardRecord,
    parse_split_name,
    read_manifest,
    sample_in_split,
)
from pretrain.data.shards.verify import VerifyReport, verify_shards

__all__ = [
    "BuildOptions",
    "BuildSummary",
    "Inspection",
    "Manifest",
    "ShardRecord",
    "ShardsError",
    "VerifyReport",
    "build_shards",
    "inspect_shards",
    "parse_split_name",
    "read_manifest",
    "sample_in_split",
    "verify_shards",
]
