"""One error path: every `tubelet` command answers a user mistake with exactly one line on stderr
and exit 2 (config) or 1 (anything else), and every user-facing error class is a TubeletError.

Each mistake is caught before any heavy work (no Lightning run, no Ray), so the whole file is cheap.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from pretrain.cli import build_parser, main
from pretrain.smoke.plan import backbone_names

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "pretrain"
NO_MANIFEST = (
    "no manifest.json (not a shard directory, or the build has not finished: rerun "
    "`tubelet shards build` to complete it)"
)

# (argv with {tmp} for a fresh empty folder, exit code, the one line printed). One mistake (at least)
# for every command and subcommand; `test_every_command_has_a_mistake_here` keeps the list complete.
MISTAKES = [
    (
        ["quickstart", "--seeds", "a,b"],
        1,
        "error: --seeds 'a,b' must be comma-separated integers, e.g. 0,1,2",
    ),
    (["config", "show", "tiny", "model.patch_size=0"], 2, "config error: model.patch_size=0 must be > 0"),
    (
        ["config", "show", "tiny", "model.size=[s"],
        2,
        "config error: override 'model.size=[s' cannot be parsed: did not find expected ',' or ']'",
    ),
    (["convert", "{tmp}/nothing", "{tmp}/out"], 1, "error: weights not found: {tmp}/nothing"),
    (["shards", "build", "folder", "{tmp}/nothing", "{tmp}/out"], 1, "error: {tmp}/nothing: not a directory"),
    (["shards", "inspect", "{tmp}"], 1, f"error: {{tmp}}: {NO_MANIFEST}"),
    (["shards", "verify", "{tmp}"], 1, f"error: {{tmp}}: {NO_MANIFEST}"),
    (["bench", "model", "--size", "tiny", "--batch", "0"], 1, "error: --batch 0 must be >= 1"),
    (
        ["bench", "model", "--size", "tiny", "--img-size", "100"],
        2,
        "config error: model.img_size=100 is not divisible by the patch size 16",
    ),
    (
        ["bench", "shards", "{tmp}/nothing"],
        1,
        "error: {tmp}/nothing: no such corpus (pass --generate N to write a synthetic one)",
    ),
    (
        ["bench", "data", "{tmp}"],
        1,
        "error: {tmp}: no manifest.json (build shards first, or pass --generate avi|h264)",
    ),
    (
        ["bench", "zero", "--world-size", "1"],
        1,
        "error: --world-size=1: ZeRO partitions over ranks, use 2 or more",
    ),
    (
        ["pretrain", "tiny"],
        2,
        "config error: data.shards is required: the folder holding manifest.json (tubelet shards build)",
    ),
    (
        ["pretrain", "tiny", "data.shards={tmp}", "trainer.resume=autoo"],
        2,
        "config error: trainer.resume='autoo' is neither auto, none nor an existing path",
    ),
    (["pretrain", "tiny", "data.shards={tmp}"], 1, f"error: {{tmp}}: {NO_MANIFEST}"),
    (["export", "{tmp}/nothing", "{tmp}/out"], 1, "error: checkpoint not found: {tmp}/nothing"),
    (
        ["export", "{tmp}/nothing", "{tmp}/out", "--quantize", "int8"],
        1,
        "error: --quantize int8 needs --format onnx (onnxruntime quantizes the ONNX graph)",
    ),
    (
        ["bench", "infer", "--teacher", "{tmp}/t"],
        1,
        "error: the light table needs --teacher CKPT, --student CKPT and --held-out VIDEO...",
    ),
    (
        ["finetune", "tiny", "data.shards={tmp}", "optim.min_lr=0.01"],
        2,
        "config error: optim.min_lr=0.01 is above the peak lr 0.00313 (optim.base_lr=0.1 x global batch 8 / 256); "
        "lower optim.min_lr",
    ),
    (["distill", "tiny", "data.shards={tmp}"], 2, "config error: distill.teacher=PATH is required"),
    (
        ["evaluate", "tiny", "ckpt=x"],
        2,
        "config error: data.shards is required: the folder holding manifest.json (tubelet shards build)",
    ),
    (
        ["evaluate", "tiny", "ckpt=x", "splits=4"],
        2,
        "config error: splits='4' must be a comma-separated list of 1, 2, 3",
    ),
    (["predict", "{tmp}/ckpt", "{tmp}/a.mp4", "--clips", "0"], 1, "error: --clips 0 must be >= 1"),
    (["predict", "{tmp}/ckpt", "{tmp}/a.mp4", "--crops", "-1"], 1, "error: --crops -1 must be >= 1"),
    (
        ["bench", "cores", "--core-rates", "1=zero"],
        1,
        "error: --core-rates '1=zero' must look like 1=4.1,4=11.8",
    ),
    (["bench", "encoding", "{tmp}/none"], 1, "error: {tmp}/none: not a folder of videos"),
    (
        ["bench", "readme", "--readme", "{tmp}/none.md"],
        1,
        "error: --readme {tmp}/none.md: no such file (run from the repository root or pass --readme)",
    ),
    (
        ["bench", "explain", "--backbones", "vit,mamba"],
        1,
        "error: --backbones 'vit,mamba': choose from vit, timesformer, vivit",
    ),
    (
        ["bench", "infer", "--batch", "0"],
        1,
        "error: --batch, --reps, --img-size and --num-frames must be >= 1, --warmup >= 0",
    ),
    (
        ["explain", "{tmp}/nothing", "{tmp}/a.mp4", "--out", "{tmp}/out"],
        1,
        "error: checkpoint not found: {tmp}/nothing",
    ),
    (
        ["smoke", "--backbone", "resnet", "--out", "{tmp}/out"],
        2,
        f"config error: --backbone 'resnet' is not allowed; choose one of {list(backbone_names())}",
    ),
    (
        ["submit", "--address", "http://127.0.0.1:1", "--stop", "JOB", "--", "pretrain", "tiny"],
        1,
        "error: give either --stop JOB_ID or a command after --, not both",
    ),
    (["keyframes", "{tmp}/nope.mp4", "--out", "{tmp}/kf"], 1, "error: no such video: {tmp}/nope.mp4"),
    (
        ["features", "{tmp}/ckpt", "{tmp}/nothing", "--out", "{tmp}/f"],
        1,
        "error: {tmp}/nothing: no such shard directory or video",
    ),
]
# Commands whose only possible mistakes are argparse's (usage line + error, exit 2).
ARGPARSE_ONLY = {("config", "list"), ("config", "reference")}


@pytest.mark.parametrize("argv, code, line", MISTAKES, ids=[" ".join(m[0][:2]) for m in MISTAKES])
def test_a_user_mistake_is_one_line_and_an_exit_code(argv, code, line, tmp_path, capsys):
    fill = lambda text: text.replace("{tmp}", str(tmp_path))  # noqa: E731
    assert main([fill(arg) for arg in argv]) == code
    captured = capsys.readouterr()
    assert captured.err == f"tubelet: {fill(line)}\n"
    assert captured.out == ""


@pytest.mark.parametrize("argv", [["config", "list", "extra"], ["config", "reference", "extra"]])
def test_argparse_mistakes_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == "tubelet: error: unrecognized arguments: extra"


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("model:\n  size: [s\ntrainer:\n  devices: 1\n")
    assert main(["config", "show", str(recipe)]) == 2
    assert capsys.readouterr().err == (
        f"tubelet: config error: {recipe}:3:8: YAML syntax error: did not find expected ',' or ']' "
        "(while parsing a flow sequence that starts at line 2, column 9)\n"
    )


def test_a_multi_line_message_prints_as_one_line(monkeypatch, capsys):
    from pretrain.data.shards.errors import StrictModeError

    def fail(args):
        raise StrictModeError(
            "2 split-file problem(s) (--strict):\n  a.txt:1: unknown class\n  b.txt:4: missing"
        )

    monkeypatch.setattr("pretrain.cli.config_cmd._list", fail)
    assert main(["config", "list"]) == 1
    assert capsys.readouterr().err == (
        "tubelet: error: 2 split-file problem(s) (--strict): a.txt:1: unknown class; b.txt:4: missing\n"
    )


def test_version(capsys):
    from pretrain import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"tubelet {__version__}\n"


def _commands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                leaves = list(_commands(sub, (*prefix, name)))
                yield from leaves or [(*prefix, name)]


def test_every_command_has_a_mistake_here():
    covered = {
        tuple(argv[:2]) if tuple(argv[:2]) in set(_commands(build_parser())) else (argv[0],)
        for argv, _, _ in MISTAKES
    } | ARGPARSE_ONLY
    missing = sorted(" ".join(c) for c in set(_commands(build_parser())) - covered)
    assert not missing, f"add a user mistake for: {missing}"


# ---------------------------------------------------------------- the error classes

# Exceptions that are control flow inside one part and never reach the user as such.
INTERNAL = {
    "DecodeError": "a sample the stream skips and counts; predict reports it per file",
    "ProbeError": "a video the shard builder lists in errors.jsonl and skips",
    "_NothingWritten": "a shard whose videos all failed; the builder discards the partial",
}


def _exception_classes() -> dict[str, tuple[str, list[str]]]:
    """name -> (file:line, base names) for every class under pretrain/ (by parsing, no imports)."""
    classes: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                classes[node.name] = (f"{path.relative_to(PACKAGE_ROOT.parent)}:{node.lineno}", bases)
    return classes


def _is_exception(name: str, classes: dict) -> bool:
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return True
    return name in classes and any(_is_exception(base, classes) for base in classes[name][1])


def _derives_from(name: str, root: str, classes: dict) -> bool:
    return name == root or (
        name in classes and any(_derives_from(b, root, classes) for b in classes[name][1])
    )


def test_every_user_facing_error_class_is_a_tubelet_error():
    classes = _exception_classes()
    outside = [
        f"{where}: {name}({', '.join(bases)})"
        for name, (where, bases) in sorted(classes.items())
        if _is_exception(name, classes)
        and name not in INTERNAL
        and not _derives_from(name, "TubeletError", classes)
    ]
    assert not outside, "error classes outside the TubeletError family:\n  " + "\n  ".join(outside)
    assert set(INTERNAL) <= set(classes), "an internal error class is gone: drop it from INTERNAL"


def test_the_family_keeps_the_builtin_bases_callers_catch():
    from pretrain.data.shards.errors import LayoutError, ShardsError, StrictModeError
    from pretrain.errors import CheckpointError, ConfigError, DataError, TubeletError, UserError

    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointError, ValueError)
    assert issubclass(DataError, RuntimeError)
    assert all(issubclass(cls, DataError) for cls in (ShardsError, LayoutError, StrictModeError))
    assert all(issubclass(cls, TubeletError) for cls in (ConfigError, DataError, CheckpointError, UserError))
