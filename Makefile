# The README's commands: `make demo`, `make test`, `make test-ros`. All create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-ros demo clean

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	# type stubs for the TensorRT code (tests/test_tensorrt_typecheck.py); --no-deps: they require the
	# tensorrt libraries, which cannot be installed here
	$(PY) -m pip install -q --no-deps "tensorrt-stubs==10.13.0.35.1"
	# TrackEval, for the HOTA cross-check in tests/test_metrics.py; --no-deps: it requires the GUI build of
	# OpenCV, which would replace the headless one the package uses (its metrics do not import cv2)
	$(PY) -m pip install -q --no-deps "trackeval==1.3.0" "tabulate>=0.9"
	touch $(STAMP)

# The official SAM 3 package, for the cgF1 / pmF1 / IL_MCC cross-check in tests/test_metrics.py, which loads
# only its evaluator file (sam3/eval/cgf1_eval.py) from the wheel; --no-deps, not installed: the package pins
# numpy<2.4 and brings its own model stack
OFFICIAL_SAM3 := .official/sam3-0.1.4-py3-none-any.whl
$(OFFICIAL_SAM3): | $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary :all: "sam3==0.1.4" -d .official

test: $(STAMP) $(OFFICIAL_SAM3)
	$(PY) -m pytest

# tests/ros under a real ROS 2: the sourced one, else ../shared/ros2 set up into .ros/ (see tests/ros/run.sh)
test-ros: $(STAMP)
	tests/ros/run.sh $(PY)

demo: $(STAMP)
	$(VENV)/bin/sam3-ros demo

clean:
	rm -rf $(VENV) .ros .official demo_out .pytest_cache *.egg-info
