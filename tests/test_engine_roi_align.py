"""The plain-torch roi_align used for exemplar boxes, on inputs whose answer is known in closed form."""

import torch

from sam3_ros.engine.roi_align import roi_align


def test_roi_align_averages_a_linear_field_at_bin_centres():
    h, w = 20, 30
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    field = torch.stack([2.0 * xs + 3.0 * ys + 1.0, -xs])[None]  # (1, 2, H, W); bilinear is exact on it
    box = torch.tensor([[3.0, 2.5, 17.0, 12.5]])  # inside the image, 14 x 10 px: 2 x 2 samples per bin
    out = roi_align(field, [box], 7)
    bin_w, bin_h = 14.0 / 7, 10.0 / 7
    cx = 3.0 + (torch.arange(7) + 0.5) * bin_w
    cy = 2.5 + (torch.arange(7) + 0.5) * bin_h
    expected = torch.stack([2.0 * cx[None, :] + 3.0 * cy[:, None] + 1.0, -cx[None, :].expand(7, 7)])
    assert out.shape == (1, 2, 7, 7)
    torch.testing.assert_close(out[0], expected, atol=1e-4, rtol=0)


def test_roi_align_zeroes_samples_outside_the_image_and_handles_no_boxes():
    field = torch.ones(1, 1, 8, 8)
    out = roi_align(field, [torch.tensor([[12.0, 12.0, 19.0, 19.0]])], 1)  # entirely beyond the border
    assert out.item() == 0.0
    assert roi_align(field, [torch.zeros(0, 4)], 7).shape == (0, 1, 7, 7)
