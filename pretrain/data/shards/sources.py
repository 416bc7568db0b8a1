"""The corpus layouts a shard build reads, by name: `list_source` turns a source directory into a
`Listing` (its videos, classes and split membership). Each layout lives in its own module and builds
on the types of `listing`; this module only knows their names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pretrain.data.shards.annotations import list_annotations
from pretrain.data.shards.errors import LayoutError
from pretrain.data.shards.hmdb51 import list_hmdb51
from pretrain.data.shards.listing import Listing, list_folder
from pretrain.data.shards.ucf101 import list_ucf101

SOURCES = ("folder", "ucf101", "hmdb51", "kinetics", "annotations")


def list_source(
    source: str, input_dir: str | Path, labels_from_folders: bool = False, annotations: Sequence[str] = ()
) -> Listing:
    """Dispatch on the source name: folder, ucf101, hmdb51, kinetics / annotations (span lists)."""
    if source == "folder":
        return list_folder(input_dir, labels_from_folders)
    if source == "ucf101":
        return list_ucf101(input_dir)
    if source == "hmdb51":
        return list_hmdb51(input_dir)
    if source in ("kinetics", "annotations"):
        return list_annotations(input_dir, annotations, kinetics=source == "kinetics")
    raise LayoutError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
