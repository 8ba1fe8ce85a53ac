"""pip install of sam3_ros: the DDS-direct node, evaluation, benchmarks and tests (no ROS install needed).

On a robot, `colcon build` installs the same package through CMakeLists.txt instead, less the offline training
code (`sam3_ros/training/`).
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def shared(folder: str, pattern: str) -> tuple[str, list[str]]:
    """Install repo-root folders under <prefix>/share/sam3_ros, the layout colcon uses too."""
    return (f"share/sam3_ros/{folder}", sorted(str(p.relative_to(ROOT)) for p in (ROOT / folder).glob(pattern)))


setup(
    name="sam3_ros",
    version="0.1.0",
    description="Real-time SAM 3 (Segment Anything with Concepts) on ROS 2 camera streams",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sam3_ros", "sam3_ros.*"]),
    package_data={"sam3_ros": ["models/*/*"]},
    data_files=[
        shared("msg", "*.msg"),
        shared("srv", "*.srv"),
        shared("config", "*.yaml"),
        shared("config", "*.xml"),
        shared("launch", "*.py"),
        shared("kernels", "*.cu*"),
        ("share/sam3_ros", ["package.xml"]),
    ],
    install_requires=[
        "numpy>=1.24",
        "pyyaml>=6",
        "torch>=2.4",
        "transformers>=5.23,<6",
        "safetensors>=0.4",
        "tokenizers>=0.20",
        "cyclonedds==11.0.1",
        "rosbags>=0.11,<0.12",
        "pycocotools>=2.0.8",
        "pillow>=10",
        "scipy>=1.10",
        "numba>=0.60",  # the published masks on the host (engine/mask_runs.py)
        "tbb>=2021.6; platform_machine == 'x86_64'",  # numba's threads for the host kernels (else its workqueue)
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "psutil>=5.9",
        "opencv-python-headless>=4.8",
    ],
    extras_require={
        "cuda": ["cuda-python>=12.6"],
        "eval": ["motmetrics>=1.4", "mcap>=1.1"],
        "export": ["onnx>=1.16", "onnxruntime>=1.18"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",  # fuzz of the node's input side (tests/test_input_fuzz.py)
            "catkin_pkg>=1.0",
            "motmetrics>=1.4",
            "mcap>=1.1",
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "cuda-python>=12.6",
            "nvidia-cuda-nvrtc-cu12",
            "mypy>=1.10",  # type-checks the TensorRT code against tensorrt-stubs (installed by the Makefile)
        ],
    },
    entry_points={"console_scripts": ["sam3-ros=sam3_ros.cli:main"]},
)
