"""`key=value` overrides anywhere on the command line, before or after the flags."""

import pytest

from pretrain.cli import build_parser, parse_arguments


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def test_overrides_after_the_flags_join_the_commands_overrides(parser):
    argv = ["features", "ckpt", "src", "data.test_crops=1", "--out", "x", "data.test_clips=1", "--tokens"]
    args = parse_arguments(parser, argv)
    assert (args.ckpt, args.source, args.out, args.tokens) == ("ckpt", "src", "x", True)
    assert args.overrides == ["data.test_crops=1", "data.test_clips=1"]


def test_evaluate_takes_ckpt_and_splits_after_out(parser):
    args = parse_arguments(parser, ["evaluate", "finetune/tiny", "--out", "o", "ckpt=a", "splits=1"])
    assert args.overrides == ["ckpt=a", "splits=1"] and args.out == "o"


def test_anything_else_left_over_is_still_refused(parser, capsys):
    with pytest.raises(SystemExit) as exited:
        parse_arguments(parser, ["features", "ckpt", "src", "--out", "x", "stray"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "tubelet: error: unrecognized arguments: stray"


def test_a_command_without_overrides_refuses_them(parser, capsys):
    with pytest.raises(SystemExit):
        parse_arguments(parser, ["config", "list", "data.test_clips=1"])
    assert capsys.readouterr().err.endswith("unrecognized arguments: data.test_clips=1\n")


def test_verbose_before_or_after_the_command(parser):
    assert parse_arguments(parser, ["-v", "quickstart"]).verbose
    assert parse_arguments(parser, ["quickstart", "--small", "--verbose"]).verbose
    assert parse_arguments(parser, ["shards", "inspect", "x", "-v"]).verbose
    assert not parse_arguments(parser, ["quickstart"]).verbose
