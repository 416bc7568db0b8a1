"""Expected counts from the dataset cards in `datasets/<name>.yaml` (repository checkout only).

Differences are warnings, never errors: users legitimately build subsets.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from pretrain.data.shards.listing import Listing

log = logging.getLogger(__name__)

CARDS_DIR = Path(__file__).resolve().parents[3] / "datasets"


def load_card(dataset: str, cards_dir: Path = CARDS_DIR) -> dict | None:
    path = cards_dir / f"{dataset}.yaml"
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text())


def count_differences(listing: Listing, expected: dict) -> list[str]:
    found = {"videos": len(listing.entries), "classes": len(listing.classes)}
    messages = [
        f"{what}: found {found[what]}, the card expects {expected[what]}"
        for what in ("videos", "classes")
        if what in expected and expected[what] != found[what]
    ]
    for split_id, subsets in (expected.get("splits") or {}).items():
        for subset, count in subsets.items():
            have = sum(1 for e in listing.entries if e.splits.get(str(split_id)) == subset)
            if have != count:
                messages.append(f"split {split_id} {subset}: found {have}, the card expects {count}")
    return messages


def check_expected_counts(listing: Listing, cards_dir: Path = CARDS_DIR) -> list[str]:
    """Log (and return) how the listing differs from its card's expected counts."""
    card = load_card(listing.dataset, cards_dir)
    if not card or not card.get("expected"):
        return []
    messages = count_differences(listing, card["expected"])
    if messages:
        log.warning(
            "%s counts differ from its dataset card (fine for a subset): %s",
            listing.dataset,
            "; ".join(messages),
        )
    return messages
