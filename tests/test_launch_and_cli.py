"""Launch files compile and declare documented arguments; the CLI lists its subcommands."""

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
                doc = next((k.value.value for k in node.keywords
                            if k.arg == "description" and isinstance(k.value, ast.Constant)), "")
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
    out = subprocess.run([sys.executable, "-m", "sam3_ros.cli", "bench", "--help"], capture_output=True,
                         text=True, check=True)
    for name in cli.BENCHMARKS:
        assert name in out.stdout
