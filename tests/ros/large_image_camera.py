"""A full-resolution camera on real ROS 2 (rclpy), run as its own process by test_large_images.py.

Publishes WIDTHxHEIGHT rgb8 images best effort (sensor data QoS) at RATE Hz for SECONDS, each stamped by the
camera's own clock, then reads the tracker node's /diagnostics for this camera until its received count
settles, and prints one JSON line: sent, received, missed_in_transport, the rate achieved.

    python large_image_camera.py TOPIC WIDTH HEIGHT RATE SECONDS
"""

import array
import json
import os
import sys
import threading
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

MATCH_TIMEOUT_S = 180.0  # the node imports torch and builds its model first, on a busy 2-core machine


def main() -> int:
    topic, width, height, rate, seconds = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
        float(sys.argv[5]),
    )
    rclpy.init()
    node = rclpy.create_node("large_image_camera")
    publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
    latest: dict[str, str] = {}
    reports = threading.Condition()

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            if status.name == f"sam3_tracker: {topic}":
                with reports:
                    latest.clear()
                    latest.update({kv.key: kv.value for kv in status.values})
                    reports.notify_all()

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()

    def next_report(timeout: float = 10.0) -> dict[str, str]:
        with reports:
            latest.clear()
            reports.wait_for(lambda: bool(latest), timeout)
            return dict(latest)

    deadline = time.monotonic() + MATCH_TIMEOUT_S
    while publisher.get_subscription_count() == 0 or not next_report(1.0):  # matched, and the node is active
        if time.monotonic() > deadline:
            print(json.dumps({"error": "the tracker node never subscribed to the camera"}))
            return 1
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
    image = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=array.array("B", rgb.tobytes()))
    image.header.frame_id = "camera"
    sent, period_ns, base_ns = int(rate * seconds), int(1e9 / rate), 10_000_000_000
    start = time.perf_counter()
    for i in range(sent):
        stamp = base_ns + i * period_ns
        image.header.stamp = Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
        publisher.publish(image)
        time.sleep(max(start + (i + 1) / rate - time.perf_counter(), 0.0))
    achieved = sent / (time.perf_counter() - start)
    values, previous = {}, None
    for _ in range(60):  # until the node's count stops changing
        values = next_report()
        if values.get("received") == previous or values.get("received") == str(sent):
            break
        previous = values.get("received")
    print(
        json.dumps(
            {
                "sent": sent,
                "received": int(values.get("received", 0)),
                "missed_in_transport": int(values.get("missed_in_transport", 0)),
                "rate_hz": achieved,
            }
        ),
        flush=True,
    )
    # Leave at once: tearing down rclpy under a still-spinning executor thread can abort the process.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
