# %% [markdown]
# # A GAN of your own, in a notebook
#
# Subclass a model of `gans`, replace one network and one loss, train it with a plain `lightning.Trainer` on data
# held in memory, draw samples, save a checkpoint and load it back. Each `# %%` block is a notebook cell (VS Code,
# Jupytext); `python examples/custom_gan.py` runs them all (about a minute on 2 CPU cores; the test suite runs it
# with `GANS_EXAMPLE_STEPS=4`).

# %%
import os
import tempfile
from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from gans import DCGAN

STEPS = int(os.environ.get("GANS_EXAMPLE_STEPS", "300"))  # training batches of 32 images
RESOLUTION = 16  # DCGAN's networks need a power of two >= 16

# %% [markdown]
# ## Data: any tensor of images in [-1, 1]
# Every datamodule of `datamodules/` serves images in [-1, 1] (the range of G's tanh) as `(images, labels)`; a plain
# `DataLoader` over one tensor works too (an unconditional model ignores labels). Here: a bright square at a random
# place on a dark background.


def squares(n: int, size: int = RESOLUTION, side: int = 6, seed: int = 0) -> Tensor:
    """``n`` grey images ``[n, 1, size, size]`` in [-1, 1]: -1 everywhere but a ``side`` x ``side`` square of +1."""
    generator = torch.Generator().manual_seed(seed)
    images = -torch.ones(n, 1, size, size)
    corners = torch.randint(0, size - side + 1, (n, 2), generator=generator)
    for image, (y, x) in zip(images, corners.tolist()):
        image[:, y:y + side, x:x + side] = 1.0
    return images


loader = DataLoader(squares(512), batch_size=32, shuffle=True)

# %% [markdown]
# ## A network of your own
# A generator is any `nn.Module` with `forward(z, labels=None)` returning images in [-1, 1]; a discriminator,
# `forward(x, labels=None)` returning one logit per image (`[N]`). This one upsamples and convolves instead of
# DCGAN's transposed convolutions (no checkerboard artefacts; Odena et al. 2016, "Deconvolution and Checkerboard
# Artifacts").


class UpsamplingGenerator(nn.Module):
    def __init__(self, z_dim: int, img_resolution: int, img_channels: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Linear(z_dim, width * 4 * 4)
        blocks: list[nn.Module] = []
        resolution = 4
        while resolution < img_resolution:
            blocks += [nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            resolution *= 2
        self.blocks = nn.Sequential(*blocks, nn.Conv2d(width, img_channels, 3, padding=1), nn.Tanh())

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.blocks(self.project(z).view(-1, self.width, 4, 4))


# %% [markdown]
# ## The subclass: one network and one loss replaced, the rest of DCGAN kept
# - The network: set `self.generator` after `super().__init__()` (the optimizers are built from the attributes
#   when training starts). New `__init__` arguments are typed and named, so they are saved in the checkpoint's
#   hyperparameters and `load_from_checkpoint` rebuilds the same model.
# - The loss: override a public hook, `generator_loss(fake, labels)` or `discriminator_loss(real, fake, labels)`.
#   Here G minimises the least-squares loss of LSGAN (Mao et al. 2017) against DCGAN's discriminator, which keeps
#   its own non-saturating loss.


class SquaresGAN(DCGAN):
    """DCGAN's discriminator and training recipe, an upsampling generator and a least-squares generator loss."""

    def __init__(self, g_width: int = 32, **kwargs) -> None:
        super().__init__(**kwargs)
        self.generator = UpsamplingGenerator(self.z_dim, self.data_shape[-1], self.data_shape[0], g_width)

    def generator_loss(self, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        logits = self.discriminator(fake, labels)
        loss = 0.5 * (logits - 1).pow(2).mean()
        self.log_train({"train/g_loss": loss.detach()}, prog_bar=True)  # the name every model logs
        return loss


model = SquaresGAN(img_resolution=RESOLUTION, img_channels=1, z_dim=32, ndf=16, g_width=32, max_kimg=STEPS * 32 / 1000)

# %% [markdown]
# ## Train with a plain Trainer
# No callbacks are needed (`callbacks.EMA`, `callbacks.SampleGrid`, ... add to it); `max_kimg` ends the run after as
# many thousand real images. `lightning fit --model=my_module.SquaresGAN ...` trains the same class from the CLI.

# %%
root = Path(tempfile.mkdtemp(prefix="custom_gan_"))
trainer = L.Trainer(max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                    enable_model_summary=False, enable_progress_bar=False, default_root_dir=root)
trainer.fit(model, loader)
print(f"trained on {model.images_seen} images")

# %% [markdown]
# ## Sample
# `sample(n)` returns `[n, C, H, W]` images in [-1, 1] (map them to [0, 1] with `(x + 1) / 2` to save or show them),
# drawn by the generator in its current mode: call `model.eval()` first, or batch norm uses the batch's statistics
# and dropout stays on. `sample(n, z=...)` takes your latents.

# %%
model.eval()
images = model.sample(16)
assert images.shape == (16, 1, RESOLUTION, RESOLUTION) and images.min() >= -1 and images.max() <= 1
z = torch.randn(4, model.z_dim)
assert torch.equal(model.sample(4, z=z), model.sample(4, z=z))  # eval mode: the same latents give the same images
mean_pixel = (images + 1).div(2).mean().item()
print(f"16 samples; mean pixel {mean_pixel:.2f} (the data's: {(6 * 6) / RESOLUTION ** 2:.2f})")

# %% [markdown]
# ## Save and load back
# `load_from_checkpoint` rebuilds `SquaresGAN` from the saved hyperparameters (g_width included) and loads the
# weights; a checkpoint of another class is refused, naming the class that wrote it.

# %%
path = root / "squares.ckpt"
trainer.save_checkpoint(path)
reloaded = SquaresGAN.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
assert isinstance(reloaded.generator, UpsamplingGenerator) and reloaded.hparams.g_width == 32
assert torch.allclose(reloaded.sample(4, z=z), model.sample(4, z=z), atol=1e-6)
print(f"saved and reloaded {path}")
