"""Per-concept non-overlap with shrink suppression: the compiled host pass keeps what the tensor ops keep."""

import numpy as np
import pytest
import torch

from sam3_ros.engine import merge
from sam3_ros.engine.merge import NO_OBJECT_LOGIT, suppress_shrunk


def _case(seed: int, n: int, concepts: int):
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.standard_normal((n, 1, 24, 20)).astype(np.float32))
    logits[:, :, 5:9] = logits[0, :, 5:9]  # rows where every object ties: the lowest index wins them
    logits[1, 0, 0, :3] = float("nan")  # argmax takes NaN above everything
    logits[-1] = logits[-1].abs() * 0.01  # a faint object that loses most of its pixels
    concept = torch.from_numpy(rng.integers(-1, concepts, n))
    return logits, concept


CASES = [(0, 2, 1), (1, 6, 1), (2, 9, 3), (3, 17, 2), (4, 5, 0)]


@pytest.mark.parametrize("seed, n, concepts", CASES)
@pytest.mark.parametrize("threshold", [0.3, 0.05, 0.9])
def test_host_pass_keeps_what_the_tensor_ops_keep(seed, n, concepts, threshold):
    logits, concept = _case(seed, n, concepts)
    expected = merge._kept(logits, concept, concepts, threshold)
    host = merge._kept_on_host(logits[:, 0].numpy(), concept.numpy(), np.float32(threshold))
    assert torch.equal(torch.from_numpy(host), expected)
    out = suppress_shrunk(logits, concept, concepts, threshold)
    reference = torch.where(expected[..., None, None], logits, logits.clamp(max=NO_OBJECT_LOGIT))
    assert torch.equal(out.nan_to_num(0.5), reference.nan_to_num(0.5))


def test_the_cases_keep_some_objects_and_suppress_others():
    flags = torch.cat([merge._kept(*_case(*case), case[2], 0.3) for case in CASES])
    assert flags.any() and not flags.all()


def test_nan_logits_win_their_pixels_as_in_argmax():
    logits = torch.ones(2, 1, 10, 10)
    logits[1, 0, :8] = float("nan")  # the second object wins 80% of the first one's pixels
    concept = torch.zeros(2, dtype=torch.long)
    expected = merge._kept(logits, concept, 1, 0.3)
    assert expected.tolist() == [[False], [False]]
    assert torch.equal(
        torch.from_numpy(merge._kept_on_host(logits[:, 0].numpy(), concept.numpy(), np.float32(0.3))), expected
    )
