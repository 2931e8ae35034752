"""Differentiable augmentations of the images a discriminator sees: ADA's pipeline and DiffAugment.

**ADA** (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", arXiv:2006.06676,
Appendix B; the official ``training/augment.py`` of stylegan2-ada-pytorch, its ``bgc`` pipeline). Each of 12
transforms is applied to each sample independently with probability ``p`` (rotation: pre- and post-rotation each
with ``1 - sqrt(1 - p)``, so that one of them happens with ``p``); a transform that is not applied is the identity.
In the official order and with the official strengths:

- geometric, composed into one inverse 3x3 matrix per sample (output pixel -> input pixel, centred coordinates):
  x-flip, 90-degree rotations (k ~ U{0..3}), integer translation (U(-0.125, 0.125) of the size, rounded to whole
  pixels), isotropic scaling (lognormal, ``2^N(0, 0.2^2)``), pre-rotation (U(-pi, pi)), anisotropic scaling
  (``2^N(0, 0.2^2)`` on x, its inverse on y), post-rotation, fractional translation (N(0, 0.125^2) of the size);
- colour, composed into one 4x4 matrix per sample acting on (r, g, b, 1): brightness (+N(0, 0.2^2)), contrast
  (x ``2^N(0, 0.5^2)``), luma flip (Householder reflection about the luma axis ``(1, 1, 1) / sqrt(3)``), hue
  rotation (U(-pi, pi) about the luma axis), saturation (x ``2^N(0, 1)`` off the luma axis). A 1-channel image gets
  the mean of the matrix's rows, as the official code.

**Resampling (simplified, documented).** The official code pads with reflection, upsamples 2x with a symmetric
wavelet (sym6) filter, samples bilinearly and downsamples with the same filter, to limit aliasing when an image
is scaled or rotated. Here the composed matrix drives one bilinear ``grid_sample`` with ``padding_mode="reflection"``
and ``align_corners=True``, which reflects about the border pixels' centres: the official reflection padding
without the pad (so no host read of the margin) and without the 2x filtering. Integer transforms (flip, 90-degree
rotation, integer translation) land exactly on pixel centres and are exact up to float round-off; scalings and
rotations alias a little more than the official filter would. That is the price of a short, vectorised,
CUDA-free pipeline; samples with no geometric transform drawn are returned untouched (so ``p = 0`` is exactly the
identity).

**DiffAugment** (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training",
arXiv:2006.10738, the official ``DiffAugment_pytorch.py``), policy ``color,translation,cutout``, every transform on
every sample (p = 1): brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5); translation by a
whole number of pixels up to 1/8 of the size with zero padding; one square of half the size cut out (zeroed) at a
random centre. Images are in [-1, 1] as everywhere in the collection.

Both are vectorised over the batch (no per-sample loop) and differentiable with respect to the images, so G's
gradient passes through them. The adaptive choice of ``p`` is a training matter: :class:`gans.training.gan_module.GANModule`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gans.errors import ConfigError

# The official defaults of AugmentPipe (stylegan2-ada-pytorch training/augment.py).
XINT_MAX = 0.125
SCALE_STD = 0.2
ROTATE_MAX = 1.0  # times pi
ANISO_STD = 0.2
XFRAC_STD = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
HUE_MAX = 1.0  # times pi
SATURATION_STD = 1.0

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def _eye(n: int, batch: int, like: Tensor) -> Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device).expand(batch, n, n).clone()


def translate_2d(tx: Tensor, ty: Tensor) -> Tensor:
    m = _eye(3, tx.shape[0], tx)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def scale_2d(sx: Tensor, sy: Tensor) -> Tensor:
    m = _eye(3, sx.shape[0], sx)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def rotate_2d(theta: Tensor) -> Tensor:
    m = _eye(3, theta.shape[0], theta)
    c, s = theta.cos(), theta.sin()
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def translate_3d(t: Tensor) -> Tensor:
    m = _eye(4, t.shape[0], t)
    m[:, :3, 3] = t[:, None]
    return m


def scale_3d(s: Tensor) -> Tensor:
    m = _eye(4, s.shape[0], s)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m


def rotate_3d(axis: Tensor, theta: Tensor) -> Tensor:
    """Rotation by ``theta`` [N] about the unit ``axis`` [3] (Rodrigues), as a 4x4 homogeneous matrix."""
    x, y, z = axis
    c, s = theta.cos(), theta.sin()
    cc = 1 - c
    m = _eye(4, theta.shape[0], theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s
    m[:, 2, 0], m[:, 2, 1], m[:, 2, 2] = z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c
    return m


def warp(images: Tensor, g_inv: Tensor) -> Tensor:
    """``images [N, C, H, W]`` resampled through ``g_inv [N, 3, 3]`` (output pixel -> input pixel, centred pixel
    coordinates): bilinear, reflecting about the border pixels' centres. ``warp(warp(x, g), inverse(g))`` is ``x``
    wherever neither warp reached past the border (exactly for whole-pixel transforms)."""
    n, channels, height, width = images.shape
    # Centred pixel coordinates -> grid_sample's [-1, 1] with align_corners=True (pixel centres at +-1).
    half = torch.tensor([max(width - 1, 1) / 2, max(height - 1, 1) / 2, 1.0], device=images.device)
    theta = (g_inv.to(half.dtype) / half[None, :, None] * half[None, None, :])[:, :2, :]  # S^-1 @ G_inv @ S
    grid = F.affine_grid(theta.to(images.dtype), [n, channels, height, width], align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def recolour(images: Tensor, c: Tensor) -> Tensor:
    """``images [N, C, H, W]`` through ``c [N, 4, 4]`` acting on (r, g, b, 1); a 1-channel image through the mean of
    the matrix's rows, as the official code."""
    n, channels, height, width = images.shape
    c = c.to(images.dtype)
    flat = images.reshape(n, channels, height * width)
    if channels == 3:
        coloured = c[:, :3, :3] @ flat + c[:, :3, 3:]
    elif channels == 1:
        c = c[:, :3, :].mean(dim=1, keepdim=True)
        coloured = flat * c[:, :, :3].sum(dim=2, keepdim=True) + c[:, :, 3:]
    else:
        raise ConfigError(f"ADA's colour transforms need 1 or 3 channels, got {channels}: set model.init_args.augment: diffaugment or none.")
    return coloured.reshape(n, channels, height, width)


class AugmentPipe(nn.Module):
    """ADA's ``bgc`` pipeline at probability ``p`` (a buffer: saved in checkpoints; the training loop adapts it).

    ``transforms`` picks a subset of :data:`GEOMETRIC` + :data:`COLOUR` (all by default, the official ``bgc``); the
    tests switch one on at a time. ``forward`` takes ``[N, C, H, W]`` images with C 1 or 3 (any C when no colour
    transform is on) and returns them augmented, keeping the graph.
    """

    def __init__(self, p: float = 0.0, transforms: tuple[str, ...] = GEOMETRIC + COLOUR) -> None:
        super().__init__()
        unknown = sorted(set(transforms) - set(GEOMETRIC + COLOUR))
        if unknown:
            raise ConfigError(f"Unknown augmentation(s) {unknown}: choose from {', '.join(GEOMETRIC + COLOUR)}.")
        self.transforms = frozenset(transforms)
        self.register_buffer("p", torch.tensor(float(p)))

    def _on(self, name: str, n: int, like: Tensor, p: Tensor | None = None) -> Tensor:
        """[N] bool: which samples get transform ``name`` (probability ``p``, the pipeline's by default)."""
        if name not in self.transforms:
            return torch.zeros(n, dtype=torch.bool, device=like.device)
        return torch.rand(n, device=like.device) < (self.p if p is None else p)

    def geometric_matrix(self, n: int, height: int, width: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(G_inv [N, 3, 3], applied [N])``: output pixel -> input pixel in centred pixel coordinates, and which
        samples got any geometric transform."""
        dev, dtype = like.device, torch.float32
        rand = lambda *shape: torch.rand(*shape, device=dev, dtype=dtype)
        randn = lambda *shape: torch.randn(*shape, device=dev, dtype=dtype)
        ones, zeros = torch.ones(n, device=dev), torch.zeros(n, device=dev)
        g = _eye(3, n, ones)
        applied = torch.zeros(n, dtype=torch.bool, device=dev)

        def use(name: str, value: Tensor, identity: Tensor, p: Tensor | None = None) -> Tensor:
            nonlocal applied
            on = self._on(name, n, ones, p)
            applied = applied | on
            return torch.where(on.reshape(-1, *[1] * (value.dim() - 1)), value, identity)

        flip = use("xflip", torch.floor(rand(n) * 2), zeros)
        g = g @ scale_2d(1 - 2 * flip, ones)
        k = use("rotate90", torch.floor(rand(n) * 4), zeros)
        g = g @ rotate_2d(-math.pi / 2 * k)
        t = use("xint", (rand(n, 2) * 2 - 1) * XINT_MAX, torch.zeros(n, 2, device=dev))
        g = g @ translate_2d(-torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height))
        s = use("scale", torch.exp2(randn(n) * SCALE_STD), ones)
        g = g @ scale_2d(1 / s, 1 / s)
        p_rot = 1 - torch.sqrt((1 - self.p).clamp(0, 1))  # P(pre or post) = p
        theta = use("rotate", (rand(n) * 2 - 1) * math.pi * ROTATE_MAX, zeros, p_rot)
        g = g @ rotate_2d(-theta)
        s = use("aniso", torch.exp2(randn(n) * ANISO_STD), ones)
        g = g @ scale_2d(1 / s, s)
        theta = use("rotate", (rand(n) * 2 - 1) * math.pi * ROTATE_MAX, zeros, p_rot)
        g = g @ rotate_2d(-theta)
        t = use("xfrac", randn(n, 2) * XFRAC_STD, torch.zeros(n, 2, device=dev))
        g = g @ translate_2d(-t[:, 0] * width, -t[:, 1] * height)
        return g, applied

    def colour_matrix(self, n: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(C [N, 4, 4], applied [N])``: (r, g, b, 1) in -> out, and which samples got any colour transform."""
        dev = like.device
        ones, zeros = torch.ones(n, device=dev), torch.zeros(n, device=dev)
        c = _eye(4, n, ones)
        applied = torch.zeros(n, dtype=torch.bool, device=dev)

        def use(name: str, value: Tensor, identity: Tensor) -> Tensor:
            nonlocal applied
            on = self._on(name, n, ones)
            applied = applied | on
            return torch.where(on, value, identity)

        b = use("brightness", torch.randn(n, device=dev) * BRIGHTNESS_STD, zeros)
        c = translate_3d(b) @ c
        k = use("contrast", torch.exp2(torch.randn(n, device=dev) * CONTRAST_STD), ones)
        c = scale_3d(k) @ c
        v = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)  # the luma axis
        vv = torch.outer(v, v)
        i = use("lumaflip", torch.floor(torch.rand(n, device=dev) * 2), zeros)
        c = (torch.eye(4, device=dev) - 2 * vv * i[:, None, None]) @ c  # Householder reflection
        theta = use("hue", (torch.rand(n, device=dev) * 2 - 1) * math.pi * HUE_MAX, zeros)
        c = rotate_3d(v[:3], theta) @ c
        s = use("saturation", torch.exp2(torch.randn(n, device=dev) * SATURATION_STD), ones)
        saturate = vv + (torch.eye(4, device=dev) - vv) * s[:, None, None]
        saturate[:, 3, 3] = 1  # an affine map keeps (r, g, b, 1)'s 1: the official matrix scales it by s, which no output reads
        c = saturate @ c
        return c, applied

    def forward(self, images: Tensor) -> Tensor:
        n, _, height, width = images.shape
        if self.transforms & set(GEOMETRIC):
            g, applied = self.geometric_matrix(n, height, width, images)
            images = torch.where(applied[:, None, None, None], warp(images, g), images)
        if self.transforms & set(COLOUR):
            c, applied = self.colour_matrix(n, images)
            images = torch.where(applied[:, None, None, None], recolour(images, c), images)
        return images

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4f}, transforms={sorted(self.transforms)}"


def diff_augment(x: Tensor, policy: tuple[str, ...] = ("color", "translation", "cutout")) -> Tensor:
    """DiffAugment (Zhao et al. 2020, arXiv:2006.10738) on ``[N, C, H, W]`` images in [-1, 1], every transform of
    ``policy`` on every sample, in the policy's order."""
    n, _, h, w = x.shape
    dev, dtype = x.device, x.dtype
    draw = lambda: torch.rand(n, 1, 1, 1, device=dev, dtype=dtype)
    if "color" in policy:
        x = x + (draw() - 0.5)  # brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (draw() * 2) + mean  # saturation
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = (x - mean) * (draw() + 0.5) + mean  # contrast
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
    if "translation" in policy:
        sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=dev)
        tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=dev)
        src_y = rows[None, :, None] + ty  # [N, H, 1]: out (y, x) <- in (y + ty, x + tx), zero outside
        src_x = cols[None, None, :] + tx  # [N, 1, W]
        inside = (src_y >= 0) & (src_y < h) & (src_x >= 0) & (src_x < w)
        index = (src_y.clamp(0, h - 1) * w + src_x.clamp(0, w - 1)).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
        x = x.reshape(n, x.shape[1], h * w).gather(2, index).reshape(x.shape) * inside[:, None].to(dtype)
    if "cutout" in policy:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=dev)
        cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=dev)
        y_in = (rows[None, :, None] >= cy - ch // 2) & (rows[None, :, None] < cy - ch // 2 + ch)
        x_in = (cols[None, None, :] >= cx - cw // 2) & (cols[None, None, :] < cx - cw // 2 + cw)
        x = x * (~(y_in & x_in))[:, None].to(dtype)
    return x


class DiffAugment(nn.Module):
    """:func:`diff_augment` with the policy ``color,translation,cutout`` as a module (no state: p is 1)."""

    def __init__(self, policy: tuple[str, ...] = ("color", "translation", "cutout")) -> None:
        super().__init__()
        self.policy = tuple(policy)

    def forward(self, images: Tensor) -> Tensor:
        return diff_augment(images, self.policy)
