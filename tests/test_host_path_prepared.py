"""A CPU engine compiles its host loops when it is made (``engine.prepare_host_path``), not on a camera's first
frames: compiling one takes numba seconds with the GIL held, and a node's subscription would lose the frames that
arrive meanwhile. Checked in a fresh process: after the engine is made, no compiled function of the engine or the
kernels gains a compiled version while the engine tracks objects on camera-sized frames."""

import subprocess
import sys

SCRIPT = """
import argparse, importlib, pkgutil
import numpy as np, torch
from numba.core.dispatcher import Dispatcher
import sam3_ros
from sam3_ros.commands.bench_e2e import _frames, _overrides
from sam3_ros.engine import Frame, load_engine, load_model
from sam3_ros.pipeline.messages import instances_to_message
from sam3_ros.settings import Settings, parse_override

torch.set_num_threads(int(__import__("sys").argv[1]))
args = argparse.Namespace(model="tiny-random", device="cpu", prompt="red circle, blue square", backend="eager", set=[])
settings = Settings.default(dict(parse_override(t) for t in _overrides(args, 16)))
engine = load_engine(settings, load_model("tiny-random"))
names = [m.name for m in pkgutil.walk_packages(sam3_ros.__path__, "sam3_ros.")]
modules = [importlib.import_module(n) for n in names if n.startswith(("sam3_ros.engine.", "sam3_ros.kernels."))]
dispatchers = {
    f"{m.__name__}.{name}": f for m in modules for name, f in vars(m).items() if isinstance(f, Dispatcher)
}
before = {name: len(f.signatures) for name, f in dispatchers.items()}
# camera-sized frames, then a smaller camera
for image in [*_frames(6, 1280, 720), *_frames(3, 320, 240)]:
    instances_to_message(engine.step(Frame(image=image, stamp_ns=1, frame_id="camera", camera="/camera")))
grew = sorted(name for name, f in dispatchers.items() if len(f.signatures) > before[name])
print(len(dispatchers), ",".join(grew) or "-")
"""


def test_the_first_frames_compile_nothing():
    for threads in (1, 2):
        run = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        count, grew = run.stdout.split()[-2:]
        assert int(count) > 10  # the engine's and the kernels' compiled functions were found
        assert grew == "-", f"compiled on a frame with {threads} thread(s): {grew}"
