"""StarGAN: Choi, Choi, Kim, Ha, Kim & Choo 2018, "StarGAN: Unified Generative Adversarial Networks for Multi-Domain
Image-to-Image Translation", arXiv:1711.09020.

One generator translates an image x to any target domain c: G(x, c), the domain vector replicated spatially and
concatenated to the image channels (section 3.1, Figure 3). One discriminator has two outputs on a shared trunk: a
PatchGAN real/fake map D_src and the domain logits D_cls (section 3.1; the appendix's network architecture tables).
The objectives (section 3.1):

- eq. 1 / eq. 8: the adversarial loss, trained as WGAN-GP (section 4): ``E[D_src(G(x, c))] - E[D_src(x)] +
  lambda_gp E[(||grad D_src(x_hat)||_2 - 1)^2]``, ``lambda_gp = 10`` (:func:`gans.training.losses.gradient_penalty`);
- eq. 2: D's domain classification loss on real images with their original domains c';
- eq. 3: G's domain classification loss on fakes with the target domains c;
- eq. 4: the reconstruction loss ``||x - G(G(x, c), c')||_1``, the same G mapping the fake back to the original domain;
- eq. 5 / eq. 6: ``L_D = -L_adv + lambda_cls L_cls^r``, ``L_G = L_adv + lambda_cls L_cls^f + lambda_rec L_rec`` with
  ``lambda_cls = 1``, ``lambda_rec = 10``.

Training (section 4 and the official code, yunjey/stargan ``solver.py``): Adam 1e-4 (0.5, 0.999) for both networks,
five D updates per G update (G on every 5th batch), batch 16, 200K iterations with the lr linearly decayed to 0 over the
last 100K; the target domains of a batch are its own labels in a random order (``torch.randperm``).

Domains here are label heads of :mod:`gans.labels` (the anime faces: ``[hair colour, eye colour]``): ``domain_heads``
picks the heads that define the domains, ``[0]`` (hair colours) or ``[0, 1]`` (hair and eye colours: multi-domain
translation), and the domain vector is the concatenation of their one-hot vectors (:meth:`LabelSpace.multi_hot`).
The classification loss is a softmax cross-entropy per head, summed (:func:`gans.training.losses.auxiliary_classifier_loss`):
an anime face has exactly one hair and one eye colour, so each head is one categorical choice. The official CelebA
setting instead scores every attribute with its own sigmoid (binary cross-entropy summed over the 5 attributes,
averaged over the batch), because CelebA's attributes are independent binary tags (male, young) and its hair colours
are three such tags that need not be exclusive; for a mutually exclusive label the official code uses the softmax
cross-entropy too (its RaFD expressions, ``F.cross_entropy``).

Networks (official ``model.py``): G is conv7x7-64, two 4x4 stride-2 convolutions (128, 256), 6 residual blocks of
256, two 4x4 stride-2 transposed convolutions (128, 64), conv7x7 to the image channels and tanh, with no biases,
instance norm with affine parameters and running statistics, and ReLU. D is 4x4 stride-2 convolutions with
LeakyReLU(0.01) doubling from 64 channels down to a 2x2 map (6 layers at 128 px: 64 ... 2048, no normalisation),
then a bias-free 3x3 convolution to the 1-channel real/fake map and a bias-free convolution whose kernel covers the
whole final map to the domain logits. PyTorch's default initialisation, as the official code. Parameters at c_dim 5:
G 8,430,528; D 44,762,048 at 128 px (44,884,928 at 256 px, where the domain kernel is 4x4).

Deviations from the official code:

- The lr decays linearly to 0 over the last ``lr_decay`` steps, as the paper says (section 4). The official
  ``solver.py`` lowers it every 1,000 iterations by ``lr / num_iters_decay``, which over the 100 updates of the
  decay only takes it down by 0.1%.
- G's instance norms keep the official running-statistics buffers (and update them while training) but always
  normalise with the input's own statistics, in eval mode too: the official code samples and tests with G never
  switched to eval mode (its running statistics would be used there and spoil the outputs; yunjey/stargan issue 102).
- The D phase adds the gradient penalty to its loss in one update, as the official code since its PyTorch 0.4
  rewrite (the first release stepped D twice, once without and once with the penalty).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor, nn
from torch.utils.data import default_collate

from gans.errors import ConfigError
from gans.labels import LabelSpace, class_names_per_head
from gans.training import contracts
from gans.training.image_to_image import Images, TranslationGAN
from gans.training.losses import auxiliary_classifier_loss, gradient_penalty

D_LEAK = 0.01  # the official discriminator's LeakyReLU slope
MIN_FINAL_MAP = 1  # D's trunk must leave at least a 1x1 map


class InstanceNorm(nn.InstanceNorm2d):
    """The official ``InstanceNorm2d(affine=True, track_running_stats=True)``: the same parameters and running-statistics
    buffers, updated while training, but the input's own statistics are used in eval mode too (see the module's
    deviations: the official code never runs G in eval mode)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=True, track_running_stats=True)

    def forward(self, x: Tensor) -> Tensor:
        track = self.training  # update the buffers as the official training does; never read them
        return F.instance_norm(
            x, self.running_mean if track else None, self.running_var if track else None, self.weight, self.bias,
            use_input_stats=True, momentum=self.momentum, eps=self.eps,
        )


class ResidualBlock(nn.Module):
    """The official bottleneck block: ``x + [conv3x3, IN, ReLU, conv3x3, IN](x)``, convolutions without bias. (CycleGAN's
    :class:`gans.models.translation.networks.ResidualBlock` pads explicitly, keeps biases and uses affine-free norms.)"""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), InstanceNorm(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), InstanceNorm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class StarGANGenerator(nn.Module):
    """G(x, c): image ``[N, C, H, W]`` and domain vector ``[N, domain_dim]`` -> image ``[N, C, H, W]`` in [-1, 1]
    (the appendix's generator table; H and W multiples of 4)."""

    def __init__(self, domain_dim: int, img_channels: int = 3, ngf: int = 64, n_blocks: int = 6) -> None:
        """
        Args:
            domain_dim: length of the domain vector (c_dim; 5 for the paper's CelebA attributes).
            img_channels: image channels (3).
            ngf: width of the first layer (64); the bottleneck has 4 ngf.
            n_blocks: residual blocks (6).
        """
        super().__init__()
        if domain_dim < 1 or ngf < 1 or n_blocks < 0:
            raise ConfigError(f"StarGAN's generator needs domain_dim >= 1, ngf >= 1 and g_blocks >= 0, got {domain_dim}, {ngf} and {n_blocks}.")
        self.domain_dim, self.img_channels = domain_dim, img_channels

        def normalised(conv: nn.Module, channels: int) -> list[nn.Module]:
            return [conv, InstanceNorm(channels), nn.ReLU()]

        layers = normalised(nn.Conv2d(img_channels + domain_dim, ngf, 7, 1, 3, bias=False), ngf)
        for width in (ngf, 2 * ngf):  # down-sampling
            layers += normalised(nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), 2 * width)
        layers += [ResidualBlock(4 * ngf) for _ in range(n_blocks)]
        for width in (4 * ngf, 2 * ngf):  # up-sampling
            layers += normalised(nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), width // 2)
        layers += [nn.Conv2d(ngf, img_channels, 7, 1, 3, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, domains: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.img_channels or domains.shape != (x.shape[0], self.domain_dim):
            raise ConfigError(
                f"StarGAN's generator takes images [N, {self.img_channels}, H, W] and domain vectors [N, {self.domain_dim}], "
                f"got {list(x.shape)} and {list(domains.shape)}."
            )
        c = repeat(domains.to(x.dtype), "n c -> n c h w", h=x.shape[2], w=x.shape[3])
        return self.net(torch.cat([x, c], dim=1))


class StarGANDiscriminator(nn.Module):
    """D(x) = (D_src, D_cls): image ``[N, C, R, R]`` -> the real/fake map ``[N, 1, R / 2^L, R / 2^L]`` and the domain
    logits ``[N, domain_dim]`` (the appendix's discriminator table: L = 6 stride-2 layers at 128 px, a 2x2 final map)."""

    def __init__(self, domain_dim: int, img_resolution: int = 128, img_channels: int = 3, ndf: int = 64, n_layers: int | None = None) -> None:
        """
        Args:
            domain_dim: number of domain logits (c_dim).
            img_resolution: image side; the domain convolution's kernel covers the final map, so D takes this size only.
            img_channels: image channels (3).
            ndf: width of the first layer (64), doubled by every further layer.
            n_layers: stride-2 layers; None = down to a 2x2 map, ``log2(img_resolution) - 1`` (6 at 128 px, 5 at 64).
        """
        super().__init__()
        if n_layers is None:
            n_layers = max(1, round(math.log2(max(img_resolution, 1))) - 1)
        final = img_resolution // 2**n_layers if n_layers >= 1 else 0
        if n_layers < 1 or final < MIN_FINAL_MAP or final * 2**n_layers != img_resolution or ndf < 1:
            raise ConfigError(
                f"StarGAN's discriminator halves the image {n_layers} times, which does not fit img_resolution {img_resolution}: "
                f"use a power-of-two resolution (e.g. 32, 64, 128) and d_layers between 1 and log2 of it (null = down to a 2x2 map), ndf >= 1."
            )
        self.img_resolution, self.img_channels = img_resolution, img_channels
        layers: list[nn.Module] = []
        width_in, width = img_channels, ndf
        for _ in range(n_layers):
            layers += [nn.Conv2d(width_in, width, 4, 2, 1), nn.LeakyReLU(D_LEAK)]
            width_in, width = width, 2 * width
        self.trunk = nn.Sequential(*layers)
        self.src = nn.Conv2d(width_in, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(width_in, domain_dim, final, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim != 4 or x.shape[1] != self.img_channels or tuple(x.shape[-2:]) != (self.img_resolution,) * 2:
            raise ConfigError(
                f"StarGAN's discriminator was built for images [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
                f"got {list(x.shape)}: set model.init_args.img_resolution / img_channels to the data's."
            )
        h = self.trunk(x)
        return self.src(h), self.cls(h).flatten(1)


class StarGAN(TranslationGAN):
    """Multi-domain translation on labelled images: batches ``(images, labels)`` with labels as in :mod:`gans.labels`
    (:class:`datamodules.AnimeFacesDataModule`: ``[N, 2]`` hair and eye colour indices)."""

    def __init__(
        self,
        num_classes: int | Sequence[int] = (12, 10),
        domain_heads: Sequence[int] = (0,),
        img_resolution: int = 128,
        img_channels: int = 3,
        ngf: int = 64,
        ndf: int = 64,
        g_blocks: int = 6,
        d_layers: int | None = None,
        gp_weight: float = 10.0,
        cls_weight: float = 1.0,
        rec_weight: float = 10.0,
        loss: str = "wasserstein",
        n_critic: int = 5,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: Sequence[float] = (0.5, 0.999),
        lr_constant: int = 100_000,
        lr_decay: int = 100_000,
        lr_unit: Literal["epoch", "step"] = "step",
        gradient_clip_val: float = 0.0,
        max_nonfinite_steps: int = 10,
        max_kimg: float = 0.0,
    ) -> None:
        """
        Args:
            num_classes: the data's label heads, as its datamodule's ``num_classes`` (the anime faces: ``[12, 10]``,
                hair and eye colours; an int for one head).
            domain_heads: the label heads whose classes are the domains: ``[0]`` (hair colours) or ``[0, 1]`` (hair
                and eye colours). The domain vector concatenates their one-hot vectors.
            img_resolution: image side (the paper: 128).
            img_channels: image channels.
            ngf: G's first width (64).
            ndf: D's first width (64).
            g_blocks: G's residual blocks (6).
            d_layers: D's stride-2 layers; null = down to a 2x2 map (6 at 128 px, 5 at 64 px).
            gp_weight: lambda_gp (10); 0 = no gradient penalty.
            cls_weight: lambda_cls (1), for D's and G's classification losses.
            rec_weight: lambda_rec (10).
            loss: the adversarial loss by name (wasserstein: the paper's WGAN-GP).
            n_critic: D updates per G update (5).
            lr_g: G's Adam learning rate (1e-4).
            lr_d: D's Adam learning rate (1e-4).
            betas: Adam's betas ((0.5, 0.999)).
            lr_constant: steps at the initial lr (100K of the paper's 200K).
            lr_decay: steps of linear decay to 0 after them (100K); 0 = constant.
            lr_unit: step (the paper counts iterations) or epoch.
            gradient_clip_val: clip each optimizer's gradient norm; 0 = off.
            max_nonfinite_steps: stop after this many batches in a row with a NaN/Inf loss.
            max_kimg: stop after this many thousand images (the paper: 200K batches of 16 = 3,200); 0 = the trainer's limits.
        """
        super().__init__(loss=loss, n_critic=n_critic, lr_g=lr_g, lr_d=lr_d, betas=betas, lr_constant=lr_constant, lr_decay=lr_decay,
                         lr_unit=lr_unit, gradient_clip_val=gradient_clip_val, max_nonfinite_steps=max_nonfinite_steps, max_kimg=max_kimg)
        self.label_space = LabelSpace.from_num_classes(num_classes)
        if not self.label_space.conditional:
            raise ConfigError("StarGAN needs labelled images: set model.init_args.num_classes to the data's (e.g. [12, 10] for the "
                              "anime faces' hair and eye colours) and give the datamodule its labels (AnimeFacesDataModule: tags_file).")
        heads = self.label_space.heads
        domain_heads = [int(h) for h in domain_heads]
        if not domain_heads or len(set(domain_heads)) != len(domain_heads) or not all(0 <= h < len(heads) for h in domain_heads):
            raise ConfigError(
                f"domain_heads {domain_heads} must name distinct label heads among 0 ... {len(heads) - 1} of num_classes {list(heads)}: "
                f"e.g. [0] (the anime faces' hair colours) or [0, 1] (hair and eye colours)."
            )
        if min(gp_weight, cls_weight, rec_weight) < 0:
            raise ConfigError(f"gp_weight, cls_weight and rec_weight must be >= 0, got {gp_weight}, {cls_weight} and {rec_weight}.")
        self.save_hyperparameters()
        self.num_classes = num_classes if isinstance(num_classes, int) else list(num_classes)
        self.domain_heads = domain_heads
        self.domain_space = LabelSpace(tuple(heads[h] for h in domain_heads))
        domain_dim = sum(self.domain_space.heads)
        self.data_shape = (img_channels, img_resolution, img_resolution)
        self.generator = StarGANGenerator(domain_dim, img_channels, ngf=ngf, n_blocks=g_blocks)
        self.discriminator = StarGANDiscriminator(domain_dim, img_resolution, img_channels, ndf=ndf, n_layers=d_layers)
        self.gp_weight, self.cls_weight, self.rec_weight = gp_weight, cls_weight, rec_weight

    # Labels and domains.

    def label_rows(self, labels: Tensor) -> Tensor:
        """Labels in the data's form (``[N, heads]`` class indices, or ``[N]`` for one head) as ``[N, heads]``."""
        heads = len(self.label_space.heads)
        if labels is None or not ((labels.dim() == 2 and labels.shape[1] == heads) or (labels.dim() == 1 and heads == 1)):
            raise ConfigError(
                f"StarGAN takes labels of num_classes={self.num_classes}, class indices [N, {heads}], got "
                f"{'none' if labels is None else list(labels.shape)}: give the datamodule labels that fit (AnimeFacesDataModule: tags_file)."
            )
        return labels.long().reshape(labels.shape[0], heads)

    def domains(self, labels: Tensor) -> Tensor:
        """The domain vector c of each label: the one-hot vectors of the ``domain_heads`` concatenated, ``[N, domain_dim]``."""
        return self.domain_space.multi_hot(self.label_rows(labels)[:, self.domain_heads])

    def target_labels(self, labels: Tensor) -> Tensor:
        """The target domains of a training batch: its own labels in a random order (the official ``randperm``), so targets
        follow the data's label distribution and, with several heads, are combinations that occur."""
        return labels[torch.randperm(labels.shape[0], device=labels.device)]

    def classification_loss(self, domain_logits: Tensor, labels: Tensor) -> Tensor:
        """eq. 2 / eq. 3: D_cls's softmax cross-entropy per domain head against ``labels``' classes, summed over heads."""
        per_head = list(torch.split(domain_logits, list(self.domain_space.heads), dim=1))
        return auxiliary_classifier_loss(per_head, self.label_rows(labels)[:, self.domain_heads])

    # The loop's parts.

    def generate(self, batch: Any) -> Images:
        """G(x, c) for targets c drawn from the batch's labels; the targets travel with the fakes as ``target``."""
        images, labels = batch
        target = self.target_labels(self.label_rows(labels))
        return {"fake": self.generator(images, self.domains(target)), "target": target}

    def discriminator_loss(self, batch: Any, images: Images) -> Tensor:
        """eq. 5 with the WGAN-GP loss (eq. 8): ``-L_adv + lambda_cls L_cls^r`` on real images with their own labels."""
        real, labels = batch
        fake = images["fake"]
        real_src, real_cls = self.discriminator(real)
        fake_src, _ = self.discriminator(fake)
        adversarial = self.adversarial_d_loss(real_src, fake_src)
        cls = self.classification_loss(real_cls, labels)
        loss = adversarial + self.cls_weight * cls
        terms = {"train/d_real": real_src.detach().mean(), "train/d_fake": fake_src.detach().mean(), "train/d_cls": cls.detach()}
        if self.gp_weight > 0:
            gp = gradient_penalty(lambda x: self.discriminator(x)[0], real, fake, self.grad_scale())
            loss = loss + self.gp_weight * gp
            terms["train/gp"] = gp.detach()
        self.log_train(terms)
        return loss

    def generator_loss(self, batch: Any, images: Images) -> Tensor:
        """eq. 6: ``L_adv + lambda_cls L_cls^f + lambda_rec L_rec``; the fakes are classified against their targets and
        mapped back to the original domains for the reconstruction (eq. 4)."""
        real, labels = batch
        fake = images["fake"]
        fake_src, fake_cls = self.discriminator(fake)
        adversarial = self.adversarial_g_loss(fake_src)
        cls = self.classification_loss(fake_cls, images["target"])
        rec = (real - self.generator(fake, self.domains(labels))).abs().mean()
        self.log_train({"train/g_adversarial": adversarial.detach(), "train/g_cls": cls.detach(), "train/rec": rec.detach()})
        return adversarial + self.cls_weight * cls + self.rec_weight * rec

    # Set-up checks, sampling, pictures.

    def setup(self, stage: str) -> None:
        """Fail early, with the fix, when the data's labels or image shape do not fit the model."""
        super().setup(stage)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        data_classes = datamodule.num_classes if isinstance(datamodule, contracts.LabelledData) else None
        if data_classes is not None and LabelSpace.from_num_classes(data_classes) != self.label_space:
            fix = (f"set model.init_args.num_classes: {data_classes}" if data_classes
                   else "give the datamodule labels (AnimeFacesDataModule: data.init_args.tags_file)")
            raise ConfigError(
                f"StarGAN is built for labels num_classes={self.num_classes} but {type(datamodule).__name__} has {data_classes or 'no labels'}: {fix}."
            )

    def forward(self, images: Tensor, target_labels: Tensor) -> Tensor:
        return self.generator(images, self.domains(target_labels))

    @torch.no_grad()
    def translate(self, images: Tensor, target_labels: Tensor) -> Tensor:
        """``images`` translated to the domains of ``target_labels`` (class indices in the data's form, every head: only
        the ``domain_heads`` matter) by the (EMA) generator."""
        device = self.device
        return self.sampling_network("generator")(images.to(device), self.domains(target_labels.to(device)))

    def held_out(self, datamodule: Any, n: int) -> tuple[Tensor, Tensor, list[str]]:
        """``n`` real images spread evenly over the datamodule's ``real_dataset()`` (the first and the last among them;
        neighbouring files of the anime faces often show one character) with their labels, and the names of the first
        domain head's classes (the column titles: the datamodule's ``class_names``, else class numbers)."""
        dataset = datamodule.real_dataset()
        indices = torch.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().long().tolist()
        images, labels = default_collate([dataset[i] for i in indices])
        head = self.domain_heads[0]
        names = class_names_per_head(datamodule, len(self.label_space.heads))
        titles = list(names[head]) if names else [f"class {k}" for k in range(self.label_space.heads[head])]
        return images, self.label_rows(labels), titles

    def pictures(self, held_out: Any) -> list[tuple[str, Tensor]]:
        """The input, then one column per class of the first domain head (the anime faces: every hair colour), the
        other heads kept at each image's own classes."""
        images, labels, titles = held_out
        head = self.domain_heads[0]
        columns = [("input", images)]
        for k, title in enumerate(titles):
            target = labels.clone()
            target[:, head] = k
            columns.append((title, self.translate(images, target).cpu()))
        return columns
