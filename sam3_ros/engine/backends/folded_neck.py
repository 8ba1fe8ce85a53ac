"""SAM 3's FPN levels with their trailing convolutions folded into one, where that is less work.

A level of either neck (``Sam3FPNLayer``) ends in a 1x1 convolution (``proj1``) that feeds a 3x3 one
(``proj2``) with nothing between them; the tracker's two high-resolution levels then go through another
1x1 (the tracker mask decoder's ``conv_s0`` / ``conv_s1``). Linear maps compose, so the chain is one 3x3
convolution from the level's input channels straight to the chain's output channels. Where the level's
input is narrow that takes several times fewer multiply-adds for the same function (up to rounding): every
level of the small models (8-32 channels into 128), and the tracker's level 0 of SAM 3 (256 channels in,
32 out of ``conv_s0``: 9x fewer than the chain).

The chain's bias is not a constant per channel: ``proj2`` pads ``proj1``'s output with zeros, not with
``proj1``'s bias, so border pixels see less of it. It is a map per input size, computed once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _is_plain(conv, kernel: int) -> bool:
    """A stride-1, undilated, ungrouped ``kernel`` x ``kernel`` convolution padded by zeros to keep its size."""
    return (
        isinstance(conv, torch.nn.Conv2d)
        and conv.kernel_size == (kernel, kernel)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding == (kernel // 2, kernel // 2)
        and conv.padding_mode == "zeros"
    )


class FoldedConvChain(torch.nn.Module):
    """``last(middle(first(x)))`` for a 1x1 ``first``, a 3x3 ``middle`` and an optional 1x1 ``last`` as one
    3x3 convolution plus the bias map of inputs of ``size`` (h, w). A snapshot: the folded weights do not
    follow later changes of the source convolutions."""

    def __init__(
        self, first: torch.nn.Conv2d, middle: torch.nn.Conv2d, last: torch.nn.Conv2d | None, size: tuple[int, int]
    ):
        super().__init__()
        convs = [first, middle] + ([last] if last is not None else [])
        if not all(_is_plain(c, k) for c, k in zip(convs, (1, 3, 1))):
            raise ValueError("FoldedConvChain folds a plain 1x1, 3x3 and optional 1x1 convolution chain")
        with torch.no_grad():  # in float64, then cast: the fold adds no rounding of its own
            weight = torch.einsum("ofhw,fi->oihw", middle.weight.double(), first.weight.double()[:, :, 0, 0])
            # the chain on an all-zero input: first's bias, zero-padded by middle
            bias = F.conv2d(
                _bias(first)[None, :, None, None].expand(1, -1, *size), middle.weight.double(), _bias(middle), padding=1
            )
            if last is not None:
                weight = torch.einsum("of,fihw->oihw", last.weight.double()[:, :, 0, 0], weight)
                bias = F.conv2d(bias, last.weight.double(), _bias(last))
            self.register_buffer("weight", weight.to(first.weight.dtype), persistent=False)
            self.register_buffer("bias_map", bias.to(first.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != tuple(self.bias_map.shape[-2:]):
            raise ValueError(
                f"FoldedConvChain was folded for inputs of size {tuple(self.bias_map.shape[-2:])}, "
                f"got {tuple(x.shape[-2:])}"
            )
        return F.conv2d(x, self.weight, padding=1) + self.bias_map


def _bias(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.bias.double() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels).double()


def chain_macs(in_channels: int, fpn: int, out_channels: int | None) -> tuple[int, int]:
    """Multiply-adds per pixel of a level's 1x1 -> 3x3 (-> 1x1) chain: (as it is, folded)."""
    out = out_channels or fpn
    separate = in_channels * fpn + 9 * fpn * fpn + (fpn * out if out_channels else 0)
    return separate, 9 * in_channels * out


class NeckLevel(torch.nn.Module):
    """``post(layer(x))`` for one ``Sam3FPNLayer`` (``post``: an optional 1x1 convolution after it), with the
    1x1 -> 3x3 (-> 1x1) chain folded (``FoldedConvChain``) when that takes fewer multiply-adds.
    ``size``: the level's spatial size (h, w) at the encoder's input size."""

    def __init__(self, layer, post: torch.nn.Conv2d | None, size: tuple[int, int]):
        super().__init__()
        self.scale_layers = layer.scale_layers  # shared with the model
        proj1, proj2 = layer.proj1, layer.proj2
        separate, folded = chain_macs(proj1.in_channels, proj2.out_channels, post.out_channels if post else None)
        self.folded = (
            folded < separate and _is_plain(proj1, 1) and _is_plain(proj2, 3) and (post is None or _is_plain(post, 1))
        )
        if self.folded:
            self.project = FoldedConvChain(proj1, proj2, post, size)
        else:
            self.project = torch.nn.Sequential(proj1, proj2, *([post] if post is not None else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to((self.project.weight if self.folded else self.project[0].weight).dtype)
        for layer in self.scale_layers:
            x = layer(x)
        return self.project(x)
