"""A node process whose context has shut down (SIGINT, SIGTERM) ends within ``SHUTDOWN_GRACE_S`` even when a thread
of it is stuck, printing every thread's stack first: real rclpy, in a process of its own."""

import ros_required  # noqa: F401  (first: without ROS 2 this module skips, saying why)
import subprocess
import sys
import time

STUCK_AT_SHUTDOWN = """
import threading
import rclpy
from sam3_ros.ros import rclpy_node

rclpy_node.SHUTDOWN_GRACE_S = 1.0
rclpy.init()
rclpy_node._exit_if_shutdown_stalls(rclpy.get_default_context())
threading.Thread(target=threading.Event().wait, name="stuck").start()  # never ends, and is no daemon
rclpy.shutdown()
"""


def test_a_process_stuck_after_its_shutdown_still_ends_and_says_where():
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK_AT_SHUTDOWN], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - start < 30
    assert "did not stop within 1 s of its shutdown" in done.stderr
    assert "Thread 0x" in done.stderr and "in wait" in done.stderr  # faulthandler's stacks, the stuck wait among them
