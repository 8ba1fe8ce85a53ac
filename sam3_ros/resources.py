"""Find the package's shared files (msg/, srv/, config/, launch/, kernels/) wherever it is installed.

Three layouts exist: a source checkout (files beside the package), a pip install (``data_files`` under
``<prefix>/share/sam3_ros``) and a colcon install (ament index, same ``share/sam3_ros`` layout).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "sam3_ros"
_SHARED = ("msg", "srv", "config", "launch", "kernels")


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """Return the directory that holds ``msg/``, ``srv/``, ``config/``, ``launch/`` and ``kernels/``."""
    candidates = [Path(__file__).resolve().parent.parent, Path(sys.prefix) / "share" / PACKAGE]
    try:  # colcon install: the ament index knows where the share directory is
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # no ROS, or package not in the index
        pass
    for path in candidates:
        if (path / "msg" / "Instance.msg").is_file():
            return path
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} share files (msg/, srv/, config/); looked in: "
        + ", ".join(str(p) for p in candidates)
    )


def shared_file(kind: str, name: str) -> Path:
    """Path of one shared file, e.g. ``shared_file("config", "tracker.yaml")``."""
    if kind not in _SHARED:
        raise ValueError(f"unknown shared folder {kind!r}; expected one of {_SHARED}")
    path = share_dir() / kind / name
    if not path.is_file():
        raise FileNotFoundError(f"missing shared file {path}")
    return path
