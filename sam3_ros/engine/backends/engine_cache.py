"""On-disk cache of TensorRT engines, keyed by everything that makes an engine valid.

A serialized TensorRT engine only runs on the GPU model and TensorRT version it was built for, and
computes one model at one precision and input shape. ``EngineKey`` holds those, plus a fingerprint of
the model's weights; each engine file has a JSON sidecar with its key and the file's hash. A lookup
whose sidecar disagrees with the wanted key (another GPU, another TensorRT, other weights, a truncated
file) reports the entry as stale with the reason, so the caller rebuilds it: nothing is used on trust.
No TensorRT import here: this is plain bookkeeping, tested on CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ...kernels.nvrtc import cache_dir as kernels_cache_dir


@dataclass(frozen=True)
class EngineKey:
    """What a TensorRT engine was built for."""

    model: str  # model name (for humans)
    weights: str  # fingerprint of the weights (``model_fingerprint``)
    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str
    precision: str  # fp32 | bf16 | fp16
    input_shape: tuple[int, ...]

    def file_stem(self) -> str:
        """A readable, unique file name for this key (model, precision, shape, and a hash of the rest)."""
        digest = hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()[:16]
        model = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(self.model).name)[:40]
        shape = "x".join(str(d) for d in self.input_shape)
        return f"{model}_{self.precision}_{shape}_{digest}"

    def as_json(self) -> dict:
        """The key as JSON-compatible values."""
        data = asdict(self)
        data["compute_capability"] = list(self.compute_capability)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "EngineKey":
        """Inverse of ``as_json``; ``ValueError`` naming what is missing or malformed."""
        try:
            return cls(
                model=str(data["model"]),
                weights=str(data["weights"]),
                gpu_name=str(data["gpu_name"]),
                compute_capability=(int(data["compute_capability"][0]), int(data["compute_capability"][1])),
                tensorrt_version=str(data["tensorrt_version"]),
                precision=str(data["precision"]),
                input_shape=tuple(int(d) for d in data["input_shape"]),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed engine key: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class Lookup:
    """The result of ``EngineCache.lookup``: ``usable`` only when the file is there and matches the key."""

    path: Path
    usable: bool
    reason: str  # why not usable ("" when usable)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sam3_ros/tensorrt`` (beside the compiled kernels), else ``~/.cache/...``."""
    return kernels_cache_dir().parent / "tensorrt"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_mismatch(found: EngineKey, wanted: EngineKey) -> str:
    """Which fields of ``found`` differ from ``wanted``, in words ("" when none)."""
    diffs = [
        f"{name} {old!r} (now {new!r})"
        for name, old, new in ((k, getattr(found, k), getattr(wanted, k)) for k in wanted.as_json())
        if old != new
    ]
    return "built for " + ", ".join(diffs) if diffs else ""


class EngineCache:
    """Engine files ``<stem>.engine`` with sidecars ``<stem>.json`` under ``root``."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: EngineKey) -> Path:
        """Where the engine for ``key`` lives."""
        return self.root / f"{key.file_stem()}.engine"

    def lookup(self, key: EngineKey) -> Lookup:
        """Whether the cached engine for ``key`` exists and was built for exactly ``key``."""
        return check_engine_file(self.path(key), key)

    def store(self, key: EngineKey, engine: bytes) -> Path:
        """Write ``engine`` for ``key`` (atomically: a crash leaves no half-written entry)."""
        path = self.path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".engine.tmp{os.getpid()}")
        tmp.write_bytes(engine)
        os.replace(tmp, path)
        sidecar = {"key": key.as_json(), "sha256": hashlib.sha256(engine).hexdigest(), "bytes": len(engine)}
        tmp_json = path.with_suffix(f".json.tmp{os.getpid()}")
        tmp_json.write_text(json.dumps(sidecar, indent=2) + "\n")
        os.replace(tmp_json, path.with_suffix(".json"))
        return path


def check_engine_file(path: Path, key: EngineKey) -> Lookup:
    """Whether the engine at ``path`` (with its ``.json`` sidecar) was built for ``key``."""
    sidecar = path.with_suffix(".json")
    if not path.is_file():
        return Lookup(path, False, "no engine file")
    if not sidecar.is_file():
        return Lookup(path, False, f"no sidecar {sidecar.name}: unknown origin")
    try:
        meta = json.loads(sidecar.read_text())
        found = EngineKey.from_json(meta["key"])
        digest = str(meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Lookup(path, False, f"unreadable sidecar: {exc}")
    mismatch = describe_mismatch(found, key)
    if mismatch:
        return Lookup(path, False, mismatch)
    if _sha256(path) != digest:
        return Lookup(path, False, "engine file does not match its recorded hash (truncated or replaced)")
    return Lookup(path, True, "")


def weights_fingerprint(model_name: str) -> str:
    """What identifies a model's weights without reading them: a built-in name (seeded weights), or for a
    model directory the names, sizes and modification times of its files."""
    path = Path(model_name).expanduser()
    if not path.is_dir():
        return f"builtin:{model_name}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return f"dir:{digest.hexdigest()[:32]}"
