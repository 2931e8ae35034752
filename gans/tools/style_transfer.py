"""Neural style transfer: Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks"
(CVPR; the earlier version is arXiv:1508.06576), as the MLDS anime report's section E.a uses it (photographs ->
artistic drawings).

One image is optimised so that its VGG-19 features (:class:`gans.metrics.vgg.VGGFeatures`, average pooling) match the
content image's at ``conv4_2`` and the style image's Gram matrices at ``conv1_1``, ``conv2_1``, ``conv3_1``,
``conv4_1`` and ``conv5_1`` (section 3, ``w_l = 1/5``):

- content loss, eq. 1: ``1/2 sum (F - P)^2``; style loss, eq. 4-5: ``sum_l w_l / (4 N_l^2 M_l^2) sum (G - A)^2``
  (:func:`gans.training.losses.content_loss`, :func:`gans.training.losses.gram_matrix`, :func:`gans.training.losses.style_loss`);
- total, eq. 7: ``alpha L_content + beta L_style`` with ``alpha / beta = 1e-3`` (figure 3 B-D; 1e-4 for E-F):
  ``content_weight`` 1, ``style_weight`` 1000;
- the image starts from white noise (section 2.3; ``init="content"`` starts from the content image, as the
  authors' later PyTorch code does) and is the only parameter, optimised with L-BFGS ("which we found to work best
  for image synthesis", section 2.3) or Adam;
- the style image is resized to the content image's size before its features are computed (section 2.3).

It runs under ``lightning fit`` like every model (``python -m gans fit --config experiments/style_transfer_cpu.yaml``):
one training step is one optimizer step (an L-BFGS step runs up to ``lbfgs_max_iter`` iterations), so
``trainer.max_steps`` sets the length; the module serves its own one-item-per-step loader, no datamodule needed.
It logs ``train/content_loss``, ``train/style_loss`` (both unweighted) and ``train/loss`` (eq. 7), and every
``picture_every_n_steps`` steps and at the end writes ``<run folder>/samples/step_XXXXXXX.png`` and
``latest.png`` (content | style | result) and ``result.png`` (the result alone, at full size).

Layer names: the paper names Caffe blobs, and Caffe's ReLUs run in place, so its ``conv4_2`` holds the
rectified output; torchvision's names for that are ``relu4_2`` etc., the defaults here (the authors' PyTorch port,
leongatys/PytorchNeuralStyleTransfer, reads ``r42`` and ``r11 ... r51`` too). ``conv4_2`` etc. give the
outputs before the ReLU.

Deviations from the paper: torchvision's ImageNet VGG-19, normalised as the paper's (each filter's mean activation
1, ``normalize_network``) over the content and style images instead of ImageNet images (see :mod:`gans.metrics.vgg`), so
a given ``alpha / beta`` balances content and style close to, not exactly as, the paper's figures; a strong-Wolfe
line search in L-BFGS (without one, the first steps can overshoot to NaN); the style image is centre-cropped to the
content image's aspect ratio before the resize (instead of being stretched); the image is not clipped to the pixel
range during optimisation, only when saved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Sequence

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from datamodules.images import ImageSource, decode_image
from gans.errors import ConfigError, DataNotFoundError
from gans.metrics.vgg import VGGFeatures
from gans.tools.pictures import columns_picture, run_dir, save_picture
from gans.training.losses import content_loss, gram_matrix, style_loss

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}  # L-BFGS: torch's step scale; Adam: about 2.5 grey levels of 255 per step


# Images.


def read_image(path: str | Path) -> Image.Image:
    """An RGB image from a file PIL reads, or from a member of a zip: ``archive.zip/folder/name.jpg``."""

    path = Path(path).expanduser()
    if path.is_file():
        return decode_image(path.read_bytes(), channels=3)
    archive = next((parent for parent in path.parents if parent.suffix.lower() == ".zip"), None)
    if archive is None or not archive.is_file():
        raise DataNotFoundError(f"Image {path} not found: give an image file, or a member of a zip as archive.zip/member.jpg.")
    source = ImageSource(archive)
    member = path.relative_to(archive).as_posix()
    names = [name for name, _, _ in source.entries]
    if member not in names:
        raise DataNotFoundError(f"{member} is not an image in {archive}; its images are named like {', '.join(names[:3])}.")
    return decode_image(source.read(member), channels=3)


def to_pixels(image: Image.Image) -> Tensor:
    """PIL RGB image -> ``[1, 3, H, W]`` float in [-1, 1]."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
    return pixels.float().div(127.5).sub(1)[None].contiguous()  # L-BFGS flattens the gradient with view()


def content_and_style(content: str | Path, style: str | Path, image_size: int) -> tuple[Tensor, Tensor]:
    """The content image with its longer side resized to ``image_size`` (aspect kept), and the style image
    centre-cropped to the same aspect ratio and resized to the same size (section 2.3); ``[1, 3, H, W]`` in [-1, 1]."""
    content_image, style_image = read_image(content), read_image(style)
    scale = image_size / max(content_image.size)
    size = (max(1, round(content_image.width * scale)), max(1, round(content_image.height * scale)))
    content_image = content_image.resize(size, Image.LANCZOS)
    # Centre crop of the style image to the content's aspect ratio, then the same size.
    width, height = style_image.size
    crop_w, crop_h = min(width, round(height * size[0] / size[1])), min(height, round(width * size[1] / size[0]))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    style_image = style_image.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.LANCZOS)
    return to_pixels(content_image), to_pixels(style_image)


class Steps(Dataset):
    """``n`` dummy items: one training step each (the image to optimise lives in the model)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Tensor:
        return torch.zeros(())


# The module.


class StyleTransfer(L.LightningModule):
    """The image of section 2.3: ``argmin_x alpha L_content(p, x) + beta L_style(a, x)`` for a photograph ``p``
    and an artwork ``a``; see the module docstring."""

    def __init__(
        self,
        content: str,
        style: str,
        image_size: int = 512,
        content_layers: Sequence[str] = CONTENT_LAYERS,
        style_layers: Sequence[str] = STYLE_LAYERS,
        style_layer_weights: Sequence[float] | None = None,
        content_weight: float = 1.0,
        style_weight: float = 1e3,
        weights: str = "imagenet",
        pooling: Literal["avg", "max"] = "avg",
        normalize_network: bool = True,
        init: Literal["noise", "content"] = "noise",
        optimizer: Literal["lbfgs", "adam"] = "lbfgs",
        lr: float | None = None,
        lbfgs_max_iter: int = 20,
        lbfgs_history_size: int = 100,
        picture_every_n_steps: int = 10,
        seed: int = 0,
    ) -> None:
        """
        Args:
            content: the photograph: an image file, or ``archive.zip/member.jpg``.
            style: the artwork, the same way; centre-cropped to the content's aspect ratio and resized to its size.
            image_size: the longer side of the result in pixels (the content image is resized to it).
            content_layers: VGG-19 layers of the content loss (the paper: conv4_2, i.e. ``relu4_2``; see above).
            style_layers: VGG-19 layers of the style loss (the paper: ``relu1_1`` ... ``relu5_1``).
            style_layer_weights: w_l per style layer; None = 1 / len(style_layers) each (the paper's 1/5).
            content_weight: alpha of eq. 7.
            style_weight: beta of eq. 7 (alpha / beta = 1e-3 in figure 3 B-D, 1e-4 in E-F).
            weights: VGG-19 weights: ``imagenet`` (torchvision's file in torch's hub cache), a path to that file,
                or ``random`` (seeded random filters: tests and offline trials, not the paper's results).
            pooling: ``avg`` (the paper) or ``max``.
            normalize_network: rescale the VGG-19 filters so that each one's mean activation over the content and
                style images is 1 (section 2's normalised network; the paper averages over ImageNet images).
            init: ``noise`` (white noise, uniform in [-1, 1]: the paper) or ``content`` (the content image).
            optimizer: ``lbfgs`` (the paper) or ``adam``.
            lr: step size; None = 1 for L-BFGS (torch's default), 0.02 for Adam (on the [-1, 1] image).
            lbfgs_max_iter: L-BFGS iterations per training step (torch's default 20), with a strong-Wolfe line search.
            lbfgs_history_size: L-BFGS memory (torch's default 100).
            picture_every_n_steps: training steps between pictures; 0 = only at the end.
            seed: seed of the white noise and of random VGG weights.
        """
        super().__init__()
        style_layer_weights = [1.0 / len(style_layers)] * len(style_layers) if style_layer_weights is None else list(style_layer_weights)
        if len(style_layer_weights) != len(style_layers):
            raise ConfigError(f"style_layer_weights has {len(style_layer_weights)} entries for {len(style_layers)} style_layers: give one per layer, or null for 1/{len(style_layers)} each.")
        if init not in ("noise", "content"):
            raise ConfigError(f"init must be 'noise' (the paper) or 'content', got {init!r}.")
        if optimizer not in DEFAULT_LR:
            raise ConfigError(f"optimizer must be 'lbfgs' (the paper) or 'adam', got {optimizer!r}.")
        if not content_layers or not style_layers:
            raise ConfigError("Give at least one content layer and one style layer (the paper: relu4_2; relu1_1 ... relu5_1).")
        self.save_hyperparameters()
        self.strict_loading = False  # checkpoints leave out the frozen VGG weights
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.style_layer_weights = style_layer_weights
        self.vgg = VGGFeatures(list(dict.fromkeys(self.content_layers + self.style_layers)), weights=weights, pooling=pooling, seed=seed)
        content_pixels, style_pixels = content_and_style(content, style, image_size)
        height, width = content_pixels.shape[-2:]
        if min(height, width) < self.vgg.min_size:
            needed = math.ceil(image_size * self.vgg.min_size / min(height, width))
            raise ConfigError(f"At image_size={image_size} the content image is {width}x{height} px, but the VGG-19 layers up to "
                              f"{max(self.vgg.layers, key=self.vgg.indices.get)} need {self.vgg.min_size} px on each side: set image_size to {needed} or more.")
        if normalize_network:
            self.vgg.normalize_filters(torch.cat([content_pixels, style_pixels]))
        self.register_buffer("content_pixels", content_pixels, persistent=False)
        self.register_buffer("style_pixels", style_pixels, persistent=False)
        if init == "noise":
            start = torch.rand(content_pixels.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        else:
            start = content_pixels.clone()
        self.image = nn.Parameter(start)  # [1, 3, H, W], in [-1, 1] once converged
        self.content_targets: dict[str, Tensor] = {}
        self.style_targets: list[Tensor] = []

    # Losses.

    @torch.no_grad()
    def compute_targets(self) -> None:
        """The content image's feature maps P^l and the style image's Gram matrices A^l (section 2)."""
        content = self.vgg(self.content_pixels)
        style = self.vgg(self.style_pixels)
        self.content_targets = {name: content[name].detach() for name in self.content_layers}
        self.style_targets = [gram_matrix(style[name]).detach() for name in self.style_layers]

    def losses(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """(L_content, L_style) of ``image`` ``[1, 3, H, W]``: eq. 1 summed over the content layers, eq. 5."""
        if not self.style_targets:
            self.compute_targets()
        features = self.vgg(image)
        content = torch.stack([content_loss(features[name], self.content_targets[name]) for name in self.content_layers]).sum()
        style = style_loss([features[name] for name in self.style_layers], self.style_targets, self.style_layer_weights)
        return content, style

    def total_loss(self, content: Tensor, style: Tensor) -> Tensor:
        """Eq. 7: ``alpha L_content + beta L_style``."""
        return self.hparams.content_weight * content + self.hparams.style_weight * style

    # Training.

    def on_fit_start(self) -> None:
        self.compute_targets()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        content, style = self.losses(self.image)
        loss = self.total_loss(content, style)
        self.log_dict({"train/content_loss": content, "train/style_loss": style, "train/loss": loss}, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr = self.hparams.lr if self.hparams.lr is not None else DEFAULT_LR[self.hparams.optimizer]
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam([self.image], lr=lr)
        return torch.optim.LBFGS([self.image], lr=lr, max_iter=self.hparams.lbfgs_max_iter, history_size=self.hparams.lbfgs_history_size,
                                 line_search_fn="strong_wolfe")  # without a line search, the first steps can overshoot to NaN

    def train_dataloader(self) -> DataLoader:
        steps = self.trainer.max_steps
        if steps is None or steps <= 0:
            raise ConfigError("StyleTransfer needs trainer.max_steps: the number of optimizer steps (an L-BFGS step runs up to lbfgs_max_iter iterations).")
        return DataLoader(Steps(steps), batch_size=1)

    # Pictures.

    def result(self) -> Tensor:
        """The current image, clipped to [-1, 1]: ``[1, 3, H, W]``."""
        return self.image.detach().clamp(-1, 1)

    @torch.no_grad()
    def draw(self) -> Path | None:
        """``samples/step_XXXXXXX.png`` and ``latest.png`` (content | style | result) and ``samples/result.png``."""
        if not self.trainer.is_global_zero:
            return None
        columns = [("content", self.content_pixels), ("style", self.style_pixels), ("result", self.result())]
        path = save_picture(self.trainer, columns_picture(columns), self.global_step)
        pixels = self.result()[0].add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        Image.fromarray(pixels).save(run_dir(self.trainer) / "samples" / "result.png")
        return path

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.hparams.picture_every_n_steps
        if every > 0 and self.global_step % every == 0:
            self.draw()

    def on_train_end(self) -> None:
        every = self.hparams.picture_every_n_steps
        if not (every > 0 and self.global_step % every == 0):
            self.draw()

    # Checkpoints.

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave out the frozen VGG-19 (80 MB): it is rebuilt from ``weights`` when the model is."""
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("vgg.")}
