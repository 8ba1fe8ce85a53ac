"""Launch files compile and declare documented arguments; the CLI lists its subcommands and reports errors one way."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from sam3_ros import cli

ROOT = Path(__file__).resolve().parent.parent
TRACKER_ARGS = {"camera_topic", "compressed", "params_file", "model", "prompt", "namespace", "devices"}


def _declared_arguments(path: Path) -> dict[str, str]:
    """name -> description of every launch argument, from DeclareLaunchArgument calls or an ARGUMENTS table."""
    tree = ast.parse(path.read_text(), str(path))
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            if node.args and isinstance(node.args[0], ast.Constant):
                doc = next(
                    (
                        k.value.value
                        for k in node.keywords
                        if k.arg == "description" and isinstance(k.value, ast.Constant)
                    ),
                    "",
                )
                out[node.args[0].value] = doc
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            for row in node.value.elts:
                out[row.elts[0].value] = row.elts[-1].value
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "launch").glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_file_compiles_and_documents_arguments(path):
    compile(path.read_text(), str(path), "exec")
    args = _declared_arguments(path)
    assert args, "declares no launch arguments"
    for name, doc in args.items():
        assert doc.strip(), f"launch argument {name} has no description"


def test_tracker_launch_declares_the_documented_arguments():
    assert TRACKER_ARGS <= set(_declared_arguments(ROOT / "launch" / "tracker.launch.py"))


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "sam3_ros.cli", "--help"], capture_output=True, text=True, check=True)
    for name in cli.COMMANDS:
        assert name in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "sam3_ros.cli", "bench", "--help"], capture_output=True, text=True, check=True
    )
    for name in cli.BENCHMARKS:
        assert name in out.stdout


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["node", "--transport", "dds", "--set", "detection.score_threshold=2"], 2, "detection.score_threshold: 2.0"),
        (["demo", "--out", "{tmp}", "--size", "8x8"], 2, "too small"),
        (["make-bag", "{tmp}/bag", "--frames", "0"], 2, "frames must be >= 1"),
        (["make-bag", "{tmp}/bag", "--images", "{tmp}"], 2, "no .jpg/.png frames"),
        (["eval", "{tmp}/bag", "--gt", "{tmp}/missing.json", "--out", "{tmp}/o"], 1, "missing.json"),
        (["bench", "engine", "--size", "12"], 2, "--size must be WxH"),
        (["bench", "kernels", "--warmup", "-1"], 2, "--warmup >= 0"),
        (["bench", "multigpu", "--objects", "two"], 2, "--objects: expected comma-separated integers"),
        (["export-onnx", "--model", "{tmp}/no-model", "--out", "{tmp}/x.onnx"], 1, "no-model"),
        (["build-engine", "--model", "tiny-random", "--device", "cpu"], 2, "TensorRT"),
        (["train-toy", "--minutes", "-1", "--out", "{tmp}/o"], 2, "--minutes must be >= 0"),
        (["train-toy", "--probe", "{tmp}/no-model", "--out", "{tmp}/o"], 1, "no-model"),
        (["bench", "engine", "--no-such-flag"], 2, "unrecognized arguments: --no-such-flag"),
    ],
)
def test_every_subcommand_reports_errors_the_same_way(argv, status, message, tmp_path, capsys):
    """Message on stderr, prefixed with the command; exit 2 for a command line that cannot work, 1 for a failure."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == status, err
    prefix = "sam3-ros " + " ".join(argv[:2] if argv[0] == "bench" else argv[:1])
    assert f"{prefix}: " in err and message in err, err
    assert not out.strip(), out
