"""Listing the official UCF101 / HMDB51 layouts and folder corpora; keys; dataset cards."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from pretrain.data.generated.corpora import write_folder_tree, write_hmdb51_tree, write_ucf101_tree
from pretrain.data.shards.cards import check_expected_counts, count_differences, load_card
from pretrain.data.shards.errors import LayoutError
from pretrain.data.shards.hmdb51 import list_hmdb51
from pretrain.data.shards.keys import key_for_path, path_for_key
from pretrain.data.shards.listing import list_folder
from pretrain.data.shards.sources import list_source
from pretrain.data.shards.ucf101 import list_ucf101


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    return write_ucf101_tree(tmp_path_factory.mktemp("ucf"), classes=3)


@pytest.fixture(scope="module")
def hmdb(tmp_path_factory):
    return write_hmdb51_tree(tmp_path_factory.mktemp("hmdb"), classes=3, videos_per_class=4)


def _membership(listing, split_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"train": [], "test": [], "unused": []}
    for entry in listing.entries:
        out[entry.splits[split_id]].append(entry.path)
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize(
    "path",
    [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "brush_hair/Glorious_Battle_(Video_Game)!_x.avi",
        "a b/c#d&e'f.mp4",
        "ünïcode/日本.mkv",
        "x_2e.avi",
        "",
    ],
)
def test_key_round_trips_and_uses_only_safe_characters(path):
    key = key_for_path(path)
    assert re.fullmatch(r"[A-Za-z0-9_-]*", key)
    assert path_for_key(key) == path


def test_keys_never_collide_for_paths_that_differ_only_in_special_characters():
    paths = ["a_b", "a.b", "a/b", "a b", "a_2eb", "a__b", "a-b", "a_5fb"]
    keys = [key_for_path(p) for p in paths]
    assert len(set(keys)) == len(paths)
    assert key_for_path("Class/v_x.avi") == "Class_2fv_5fx_2eavi"


def test_ucf101_listing_matches_official_split_files(ucf):
    listing = list_ucf101(ucf.root)
    assert listing.classes == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert listing.problems == []
    assert listing.split_ids == ("1", "2", "3")
    assert len(listing.entries) == 12
    for split_id in "123":
        expected = {k: sorted(v) for k, v in ucf.splits[split_id].items()}
        assert _membership(listing, split_id) == expected
        assert Counter(e.splits[split_id] for e in listing.entries) == {"train": 9, "test": 3}
    labels = {e.path.split("/")[0]: e.label for e in listing.entries}
    assert labels == {"ApplyEyeMakeup": 0, "ApplyLipstick": 1, "Archery": 2}
    group1 = next(e for e in listing.entries if "_g01_" in e.path)
    assert group1.splits == {"1": "test", "2": "train", "3": "train"} and group1.split == "test"


def test_ucf101_split_file_problems_name_file_and_line(tmp_path):
    corpus = write_ucf101_tree(tmp_path, classes=2, groups=(1, 22))
    trainlist = tmp_path / "ucfTrainTestlist" / "trainlist01.txt"
    lines = trainlist.read_bytes().decode().splitlines()
    extra = [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g99_c01.avi 1",
        "Skydiving/v_Skydiving_g01_c01.avi 7",
        "ApplyLipstick/v_ApplyLipstick_g22_c01.avi 1",
        "../../etc/passwd 1",
    ]
    trainlist.write_bytes(("\r\n".join(lines[:1] + extra) + "\r\n").encode())
    listing = list_ucf101(tmp_path)
    described = [p.describe() for p in listing.problems]
    assert described == [
        f"{trainlist}:2: names a missing video 'ApplyEyeMakeup/v_ApplyEyeMakeup_g99_c01.avi'",
        f"{trainlist}:3: unknown class 'Skydiving' (not in classInd.txt)",
        f"{trainlist}:4: label 1 disagrees with classInd.txt (ApplyLipstick is 2)",
        f"{trainlist}:5: '../../etc/passwd' is not a '<Class>/<video>.avi' path inside UCF-101/",
    ]
    assert len(listing.entries) == len(corpus.videos)


def test_ucf101_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(LayoutError, match="UCF-101/<Class>/v_\\*.avi"):
        list_ucf101(tmp_path)


def test_hmdb51_listing_handles_punctuation_crlf_and_unused(hmdb):
    listing = list_hmdb51(hmdb.root)
    assert listing.classes == ["brush_hair", "cartwheel", "catch"]
    assert listing.problems == []
    assert any("(Video_Game)!" in e.path for e in listing.entries)
    assert any(e.path.startswith("brush_hair/#20_Rhythm") for e in listing.entries)
    for split_id in "123":
        expected = {k: sorted(v) for k, v in hmdb.splits[split_id].items()}
        assert _membership(listing, split_id) == expected
        assert Counter(e.splits[split_id] for e in listing.entries) == {"train": 6, "test": 3, "unused": 3}
    assert {e.class_name: e.label for e in listing.entries} == {"brush_hair": 0, "cartwheel": 1, "catch": 2}


def test_hmdb51_class_folders_directly_in_input_and_names_with_spaces(tmp_path):
    write_hmdb51_tree(tmp_path, classes=2, videos_per_class=9, subfolder=None)
    listing = list_hmdb51(tmp_path)
    assert len(listing.entries) == 18
    assert any(" " in e.path for e in listing.entries)  # "Finding Nemo_..."
    assert listing.problems == []


def test_hmdb51_split_problems_name_file_and_line(tmp_path):
    write_hmdb51_tree(tmp_path, classes=2, videos_per_class=4)
    splits = tmp_path / "testTrainMulti_7030_splits"
    path = splits / "catch_test_split1.txt"  # a class without a folder
    path.write_bytes(b"x.avi 1\r\n")
    (tmp_path / "hmdb51_org" / "wave").mkdir()
    (tmp_path / "hmdb51_org" / "brush_hair" / "April_09_brush_hair_u_nm_np1_fr_goo_0.avi").rename(
        tmp_path / "hmdb51_org" / "wave" / "hi_wave_0.avi"
    )
    bad = splits / "brush_hair_test_split2.txt"
    bad.write_bytes(bad.read_bytes() + b"missing video.avi 1 \r\nbroken line\r\n")
    listing = list_hmdb51(tmp_path)
    described = sorted(p.describe() for p in listing.problems)
    assert described == sorted(
        [
            f"{path}: unknown class 'catch' (no such class folder)",
            *(
                f"{splits / f'brush_hair_test_split{k}.txt'}:1: names a missing video "
                "'April_09_brush_hair_u_nm_np1_fr_goo_0.avi'"
                for k in (1, 2, 3)
            ),
            f"{bad}:5: names a missing video 'missing video.avi'",
            f"{splits}: no split files for class 'wave': its videos are unused in every split",
            f"{bad}:6: expected '<video>.avi <0|1|2>', got 'broken line'",
        ]
    )


def test_folder_listing_unlabeled_and_labeled(tmp_path):
    write_folder_tree(tmp_path / "flat", classes=None, videos_per_class=3)
    flat = list_folder(tmp_path / "flat")
    assert [e.path for e in flat.entries] == ["clip 0.mp4", "clip 1.avi", "clip 2.mp4"]
    assert flat.classes == [] and all(e.label is None and e.split == "all" for e in flat.entries)
    write_folder_tree(tmp_path / "labeled", classes=["run", "jump"], videos_per_class=2)
    (tmp_path / "labeled" / ".hidden").mkdir()
    (tmp_path / "labeled" / ".hidden" / "x.mp4").write_bytes(b"")
    (tmp_path / "labeled" / "loose.mp4").write_bytes(b"")
    labeled = list_source("folder", tmp_path / "labeled", labels_from_folders=True)
    assert labeled.classes == ["jump", "run"]
    assert sorted((e.path, e.label) for e in labeled.entries) == [
        ("jump/clip 0.avi", 0),
        ("jump/clip 1.mp4", 0),
        ("run/clip 0.mp4", 1),
        ("run/clip 1.avi", 1),
    ]
    assert [p.reason for p in labeled.problems] == ["not inside a class folder; skipped"]


def test_cards_expect_official_counts_and_warn_on_subsets(ucf):
    card = load_card("ucf101")
    assert card["expected"]["splits"]["1"] == {"train": 9537, "test": 3783}
    assert load_card("hmdb51")["expected"]["videos"] == 6766
    listing = list_ucf101(ucf.root)
    messages = count_differences(listing, card["expected"])
    assert messages[:3] == [
        "videos: found 12, the card expects 13320",
        "classes: found 3, the card expects 101",
        "split 1 train: found 9, the card expects 9537",
    ]
    assert check_expected_counts(listing) == messages
    assert {Path(p).stem for p in Path(load_card.__defaults__[0]).glob("*.yaml")} >= {
        "ucf101",
        "hmdb51",
        "kinetics400",
        "folder",
    }


def test_synthetic_trees_use_the_official_file_formats(ucf, hmdb):
    lists = ucf.root / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_bytes() == b"1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 Archery\r\n"
    assert (lists / "trainlist01.txt").read_bytes().split(b"\n")[
        0
    ] == b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r"
    assert (lists / "testlist01.txt").read_bytes().split(b"\n")[
        0
    ] == b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r"
    assert (ucf.root / "UCF-101" / "Archery" / "v_Archery_g22_c01.avi").read_bytes()[:4] == b"RIFF"
    split_file = hmdb.root / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt"
    assert split_file.read_bytes().split(b"\n")[0] == b"April_09_brush_hair_u_nm_np1_fr_goo_0.avi 2 \r"
    assert (hmdb.root / "hmdb51_org" / "cartwheel").is_dir()
