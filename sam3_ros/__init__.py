"""sam3_ros: real-time SAM 3 (Segment Anything with Concepts) for ROS 2 camera streams.

Data flow, one subpackage per stage (imports go one way, left to right):
``ros`` (transports) -> ``pipeline`` (latest-frame slots, node logic) -> ``engine`` (SAM 3 streaming)
-> ``kernels`` (CUDA kernels and their references) -> ``codec`` (RLE masks, image encodings).
Nothing below ``ros`` imports ROS.
"""

__version__ = "0.1.0"
