"""The TensorRT code, which cannot run here, type-checked with mypy against ``tensorrt-stubs``.

The stubs (pybind11-stubgen output) ship without ``py.typed`` and with a few signatures that are not
valid Python (a parameter named ``in``, a parameter without default after defaulted ones), so mypy
would either ignore them or stop at a syntax error. The test copies them, repairs exactly those two
things, and checks our module against them; a probe with wrong TensorRT calls proves the stubs are
really in effect (without them every ``trt.*`` is ``Any`` and anything passes).
"""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "sam3_ros" / "engine" / "backends" / "tensorrt_runtime.py"
MYPY_CONFIG = """
[mypy]
follow_imports = skip
check_untyped_defs = True
[mypy-tensorrt.*,tensorrt_bindings.*]
follow_imports = normal
ignore_errors = True
"""
PROBE = """
import tensorrt as trt

def probe(engine: trt.ICudaEngine, context: trt.IExecutionContext) -> None:
    context.execute_async_v3("stream", 0)
    engine.get_tensor_shap("pixels")
"""


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def _repair_signature(line: str) -> str:
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*)$", line)
    if not match:
        return line
    params, defaulted = [], False
    for param in _split_top_level(match.group(2)):
        if param.split(":")[0].strip() == "in":
            param = param.replace("in", "in_", 1)
        if "=" in param:
            defaulted = True
        elif defaulted and param.strip() and not param.strip().startswith("*"):
            param += " = ..."
        params.append(param)
    return match.group(1) + ",".join(params) + match.group(3)


def _repaired_stubs(into: Path) -> Path:
    try:
        files = importlib.metadata.files("tensorrt-stubs") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(
            "tensorrt-stubs is not installed: pip install --no-deps tensorrt-stubs==10.13.0.35.1 "
            "(its dependency on the tensorrt libraries cannot be installed; make test does this)"
        )
    stubs = [f for f in files if str(f).endswith(".pyi")]
    assert stubs, "tensorrt-stubs has no .pyi files"
    for stub in stubs:
        target = into / str(stub)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = Path(stub.locate()).read_text()
        target.write_text("\n".join(_repair_signature(line) for line in text.split("\n")))
    return into


def test_tensorrt_module_type_checks_against_the_stubs(tmp_path):
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    stubs = _repaired_stubs(tmp_path / "stubs")
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(MODULE),
            str(probe),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"},
    )
    lines = result.stdout.splitlines()
    ours = [line for line in lines if line.startswith(str(MODULE.relative_to(ROOT))) or "tensorrt_runtime.py" in line]
    assert not ours, "\n".join(ours)
    probe_errors = "\n".join(line for line in lines if "probe.py" in line)
    assert 'Too many arguments for "execute_async_v3"' in probe_errors, result.stdout + result.stderr
    assert '"ICudaEngine" has no attribute "get_tensor_shap"' in probe_errors, result.stdout + result.stderr
