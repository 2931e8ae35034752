"""ACGAN: Conditional Image Synthesis with Auxiliary Classifier GANs (Odena, Olah & Shlens 2017, arXiv:1610.09585).

G draws ``X_fake = G(c, z)`` from a class label c and noise z; D outputs both a probability over sources
``P(S | X)`` (real / fake) and one over classes ``P(C | X)`` (section 3). With the log-likelihood of the correct
source ``L_S`` (eq. 2) and of the correct class ``L_C`` (eq. 3), D maximises ``L_S + L_C`` and G maximises
``L_C - L_S``. Here, in minimisation form: D minimises the adversarial D loss chosen by name (``-L_S`` for the
default logistic loss) plus ``aux_weight`` times the cross-entropy of its classifier on the real and the fake
batch; G minimises the adversarial G loss (the non-saturating ``-log D(G(z))`` by default, ``loss: minimax`` for the
literal ``-L_S``) plus ``aux_weight`` times the cross-entropy on its fakes.

Labels follow :mod:`gans.labels`: one head (MNIST's 10 digits) or several. On the anime faces of the MLDS 2018 GAN
homework each image has exactly one hair colour and one eye colour, so D has **two categorical (softmax) heads**,
``[hair, eye]``, not a multi-hot sigmoid target: a softmax per head encodes that the colours of a head exclude each
other, its cross-entropy is the log-likelihood of the pair (the heads' terms add), and the argmax per head is a
well-defined prediction (D's accuracy is logged per head). G's input is z concatenated with the tag vector
(:meth:`gans.labels.LabelSpace.multi_hot`: the one-hot hair and eye vectors side by side, 22 numbers).

Two network families (``architecture``):

- ``dcgan``: the DCGAN networks of :mod:`gans.models.classic.dcgan` (reused, not copied) with the tag vector appended to z and a
  classifier on D's last 4x4 feature map beside the real/fake logit: the 32 px MNIST analog of the paper's
  CIFAR-10 networks (strided convolutions, batch norm, leaky ReLU 0.2, N(0, 0.02) init).
- ``srresnet``: the SRResNet-style G and D the MLDS anime report uses, those of Jin et al. 2017, "Towards the
  Automatic Anime Characters Creation with GANs" (arXiv:1708.05509, section 4.2, Figures 2-3). G: dense to
  64x16x16, BN, ReLU, 16 residual blocks (conv 3x3, BN, ReLU, conv 3x3, BN, sum), BN, ReLU, a skip over the
  blocks, then pixel-shuffle upsampling blocks (conv 3x3 to 256, shuffle x2, BN, ReLU) and a 9x9 conv to RGB with
  tanh. D: stride-2 convs (4x4 to 32, 64, 128 channels, then 3x3 to 256, 512, 1024) with leaky ReLU, each but the
  last followed by 2 residual blocks (conv 3x3, lReLU, conv 3x3, sum, lReLU), then dense real/fake and tag heads
  on the 2x2 map. Upsampling stages scale with ``img_resolution``: 2 at 64 px (16 -> 64), the paper's 3 at 128 px;
  D's stages stop at 2x2 (1024 channels at 128 px, 512 at 64 px).

The report's training tips are switches of :class:`gans.training.gan_module.GANModule` and apply to the source (real/fake) term
only, never to the class labels: ``soft_labels`` (each D target drawn per sample, real ~ U[0.8, 1.2], fake ~
U[0, 0.2]; :func:`gans.training.tricks.label_targets`) and ``g_dropout`` (:class:`gans.nn.basic.AlwaysDropout` after
G's hidden layers but the last, on at train and test time). ``label_flip_prob`` (ganhacks' noisy labels) is not one
of the report's tips: 0 (off) by default and in the anime configs, on only when asked.

``classify_fakes`` (default True, the paper's ``L_C`` on ``X_fake`` in D's loss) lets D's classifier learn from G's
samples too. With False it learns from the real images only, the report's ``L_cls(D) = E_x~P_data[log P_D(label_x |
x)]`` (also StudioGAN's choice), and G is still trained to make D's classifier name the requested class. Every anime
config (``experiments/acgan_anime*.yaml``) sets False: on the anime faces at 32 px, with the paper's term G's
auxiliary loss fell low while its samples barely showed the hair colour asked for (conditional accuracy 0.34 against
0.83 with False at 40 kimg; benchmarks/README.md section 9). The default stays the paper's, as this class implements
Odena et al. and ``experiments/acgan_mnist.yaml`` reproduces it.

Deviations from the paper:

- Labels for the fakes of a step are the real batch's labels (a draw from the data's label distribution) rather
  than uniform; :meth:`sample` draws uniform labels.
- DCGAN family: no dropout in D (the paper's CIFAR-10 D has dropout 0.5), and the heads are 4x4 convolutions on the
  4x4 map (a dense layer on it) as in DCGAN, where the paper flattens a larger map.
- SRResNet family: Jin et al. train it with DRAGAN's gradient penalty and a multi-label sigmoid tag head over 34 tags;
  here the loss is chosen by name (the report trains the non-saturating loss) and the tag head is one softmax per
  label head. The leaky ReLU slope (not given in the figure) is 0.2; every convolution has a bias; G's input is z
  (100, the report's) plus the tag vector where the paper draws z of 128.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from gans.checks import check_resolution
from gans.errors import ConfigError
from gans.labels import LabelSpace
from gans.models.classic.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_widths
from gans.nn.basic import AlwaysDropout, Norm, dcgan_init_
from gans.training.gan_module import GANModule
from gans.training.losses import auxiliary_classifier_loss

Architecture = Literal["dcgan", "srresnet"]
SRRESNET_BASE = 16  # G's first feature map is 16x16 (Jin et al., Figure 2)
SRRESNET_D_SIDE = 2  # D's last feature map is 2x2 (Figure 3)
SRRESNET_D_K4_LAYERS = 3  # D's first three stride-2 convs are 4x4, the others 3x3 (Figure 3)
LRELU_SLOPE = 0.2


# Shared pieces: the tag-conditioned input of G and the classifier heads of D.


class TagConditioned(nn.Module):
    """A generator of one input vector made conditional: ``body(cat[z, multi_hot(labels)])`` (Odena et al. section 3,
    the report's "z concatenated with the tag vector")."""

    def __init__(self, body: nn.Module, label_space: LabelSpace) -> None:
        super().__init__()
        self.body = body
        self.label_space = label_space

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        self.label_space.check(labels, "ACGAN generator")
        tags = self.label_space.multi_hot(labels, dtype=z.dtype)  # [N, sum(heads)]
        return self.body(torch.cat([z, tags], dim=1))  # [N, z_dim + sum(heads)] -> [N, C, R, R]


class ClassifierHeads(nn.Module):
    """One linear softmax classifier per label head on D's flattened features: ``[N, F]`` -> ``[[N, k_h]]``."""

    def __init__(self, in_features: int, heads: Sequence[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(in_features, k) for k in heads)

    def forward(self, features: Tensor) -> list[Tensor]:
        return [head(features) for head in self.heads]


class ACGANDiscriminator(nn.Module):
    """The protocol of both families: ``forward(x)`` is the real/fake logit ``[N]`` (so the base regularisers and
    callbacks see an ordinary D) and ``heads(x)`` returns it with the class logits of every head in one pass."""

    def heads(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        raise NotImplementedError

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.heads(x)[0]


# The DCGAN family.


class DCGANAuxDiscriminator(ACGANDiscriminator):
    """DCGAN's D (:class:`gans.models.classic.dcgan.DCGANDiscriminator`) plus class heads on its last 4x4 feature map."""

    def __init__(self, img_resolution: int, img_channels: int, ndf: int, heads: Sequence[int], norm: Norm = "batch") -> None:
        super().__init__()
        self.body = DCGANDiscriminator(img_resolution, img_channels, ndf, norm)
        width = dcgan_widths(img_resolution, ndf)[-1]
        self.classifier = ClassifierHeads(width * 4 * 4, heads)
        self.classifier.apply(dcgan_init_)

    def heads(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = self.body.features(x)  # [N, 8 ndf, 4, 4] at 64 px
        return self.body.logit(features), self.classifier(features.flatten(1))


# The SRResNet family (Jin et al. 2017, Figures 2-3).


class GeneratorResBlock(nn.Module):
    """SRResNet's residual block (Ledig et al. 2017; Jin et al. Figure 2): conv 3x3, BN, ReLU, conv 3x3, BN, + x."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU(True),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class PixelShuffleUp(nn.Module):
    """Sub-pixel upsampling x2 (Shi et al. 2016): conv 3x3 to 4C, pixel shuffle to C at twice the side, BN, ReLU."""

    def __init__(self, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 4 * channels, 3, 1, 1),  # 64 -> 256 channels in the paper
            nn.PixelShuffle(2),  # [N, 4C, H, W] -> [N, C, 2H, 2W]
            nn.BatchNorm2d(channels), nn.ReLU(True), AlwaysDropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class SRResNetGenerator(nn.Module):
    """Jin et al.'s G (Figure 2): input vector ``[N, in_features]`` -> image ``[N, C, R, R]`` in [-1, 1].

    ``dropout`` (the report's tip, on at test time too) follows the input layer and every upsampling block but the
    last, as in :class:`gans.models.classic.dcgan.DCGANGenerator`.
    """

    def __init__(self, in_features: int, img_resolution: int, img_channels: int, channels: int = 64, num_blocks: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        stages = check_resolution(img_resolution, SRRESNET_BASE, "ACGAN's SRResNet G") - 4  # log2(R / 16)
        self.channels = channels
        self.dense = nn.Linear(in_features, channels * SRRESNET_BASE * SRRESNET_BASE)
        self.input_act = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(True), AlwaysDropout(dropout))
        self.blocks = nn.Sequential(*(GeneratorResBlock(channels) for _ in range(num_blocks)))
        self.blocks_out = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(True))
        self.upsample = nn.Sequential(*(PixelShuffleUp(channels, dropout if i < stages - 1 else 0.0) for i in range(stages)))
        self.to_rgb = nn.Sequential(nn.Conv2d(channels, img_channels, 9, 1, 4), nn.Tanh())
        self.apply(dcgan_init_)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        # Input: dense to C x 16 x 16.
        h = self.input_act(self.dense(x).view(-1, self.channels, SRRESNET_BASE, SRRESNET_BASE))  # [N, C, 16, 16]
        # Residual blocks with a skip over all of them.
        h = h + self.blocks_out(self.blocks(h))
        # Pixel-shuffle upsampling and the 9x9 output convolution.
        return self.to_rgb(self.upsample(h))  # [N, img_channels, R, R]


class DiscriminatorResBlock(nn.Module):
    """Jin et al.'s D block (Figure 3): conv 3x3, lReLU, conv 3x3, + x, lReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.LeakyReLU(LRELU_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.conv1(self.act(self.conv0(x))))


def srresnet_d_widths(img_resolution: int, channels: int) -> list[int]:
    """Widths of D's stride-2 convs from the input down to 2x2: 32, 64, ..., 1024 at 128 px (6 convs), 512 at 64 px."""
    n_layers = check_resolution(img_resolution, SRRESNET_BASE, "ACGAN's SRResNet D") - 1  # log2(R / 2)
    return [channels * 2**i for i in range(n_layers)]


class SRResNetDiscriminator(ACGANDiscriminator):
    """Jin et al.'s D (Figure 3): image ``[N, C, R, R]`` -> real/fake logit ``[N]`` and class logits per head."""

    def __init__(self, img_resolution: int, img_channels: int, heads: Sequence[int], channels: int = 32, blocks_per_stage: int = 2) -> None:
        super().__init__()
        widths = srresnet_d_widths(img_resolution, channels)
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip([img_channels, *widths[:-1]], widths)):
            kernel = 4 if i < SRRESNET_D_K4_LAYERS else 3
            layers += [nn.Conv2d(w_in, w_out, kernel, 2, 1), nn.LeakyReLU(LRELU_SLOPE)]
            if i < len(widths) - 1:  # no residual blocks after the last stride-2 conv
                layers += [DiscriminatorResBlock(w_out) for _ in range(blocks_per_stage)]
        self.features = nn.Sequential(*layers)
        features = widths[-1] * SRRESNET_D_SIDE * SRRESNET_D_SIDE
        self.adversarial = nn.Linear(features, 1)
        self.classifier = ClassifierHeads(features, heads)
        self.apply(dcgan_init_)

    def heads(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = self.features(x).flatten(1)  # [N, widths[-1] * 2 * 2]
        return self.adversarial(h).flatten(), self.classifier(h)


# The LightningModule.


class ACGAN(GANModule):
    """ACGAN: D classifies the label(s) beside real/fake; both networks add the class loss (aux_weight) to theirs."""

    def __init__(
        self,
        num_classes: int | list[int] = 10,
        img_resolution: int = 32,
        img_channels: int = 1,
        z_dim: int = 100,
        architecture: Architecture = "dcgan",
        ngf: int | None = None,
        ndf: int | None = None,
        d_norm: Norm = "batch",
        g_blocks: int = 16,
        d_blocks: int = 2,
        g_dropout: float = 0.0,
        aux_weight: float = 1.0,
        classify_fakes: bool = True,
        **kwargs,
    ) -> None:
        """
        Args:
            num_classes: classes per label head: 10 for MNIST, [12, 10] for the anime faces' [hair, eye] colours.
            img_resolution: image side, a power of two >= 16 (32 for padded MNIST, 64 for the anime faces).
            img_channels: 1 for MNIST, 3 for RGB.
            z_dim: noise size; G's input is z plus the tag vector (sum(num_classes) numbers).
            architecture: dcgan (the DCGAN networks with class heads) or srresnet (Jin et al.'s G and D, the report's).
            ngf: G width: DCGAN's last hidden layer (default 64) or SRResNet's trunk (default 64); None = default.
            ndf: D width: DCGAN's first layer (default 64) or SRResNet's first conv (default 32); None = default.
            d_norm: DCGAN family: normalisation in D's hidden layers (batch, layer or none).
            g_blocks: SRResNet family: residual blocks in G (paper: 16).
            d_blocks: SRResNet family: residual blocks after each of D's stride-2 convs (paper: 2).
            g_dropout: dropout in G, on at train and test time (the report's tip; pix2pix's noise); 0 = off.
            aux_weight: weight of the class loss L_C in both networks' losses (paper: 1).
            classify_fakes: D's classifier also learns from G's samples (the paper's L_C on X_fake). False trains
                it on the real images only (the MLDS anime report's L_cls(D), set in every anime config), so that D's
                classifier knows only what the classes look like and G cannot pass it with a class code that D has
                learned to read off its samples.
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (loss, lr_g, lr_d, soft_labels, ...).
        """
        label_space = LabelSpace.from_num_classes(num_classes)
        if not label_space.conditional:
            raise ConfigError("ACGAN needs labels: set model.init_args.num_classes (10 for MNIST, [12, 10] for hair and eye colours).")
        if aux_weight < 0:
            raise ConfigError(f"aux_weight must be >= 0, got {aux_weight}.")
        if min(g_blocks, d_blocks) < 0:
            raise ConfigError(f"g_blocks and d_blocks must be >= 0, got {g_blocks} and {d_blocks}.")
        in_features = z_dim + sum(label_space.heads)
        if architecture == "dcgan":
            body = DCGANGenerator(in_features, img_resolution, img_channels, ngf or 64, g_dropout)
            discriminator = DCGANAuxDiscriminator(img_resolution, img_channels, ndf or 64, label_space.heads, d_norm)
        elif architecture == "srresnet":
            body = SRResNetGenerator(in_features, img_resolution, img_channels, ngf or 64, g_blocks, g_dropout)
            discriminator = SRResNetDiscriminator(img_resolution, img_channels, label_space.heads, ndf or 32, d_blocks)
        else:
            raise ConfigError(f"Unknown architecture {architecture!r}: choose 'dcgan' or 'srresnet' (model.init_args.architecture).")
        super().__init__(generator=TagConditioned(body, label_space), discriminator=discriminator, z_dim=z_dim, num_classes=num_classes, **kwargs)
        self.data_shape = (img_channels, img_resolution, img_resolution)

    def discriminator_loss(self, real: Tensor, fake: Tensor, labels: Tensor | None = None) -> Tensor:
        """``-L_S`` (the adversarial loss, with the label tricks) + aux_weight * ``-L_C`` on real and fake, plus the
        regularisers switched on; logs ``train/d_aux`` and D's accuracy on real images (``train/d_acc``, and
        ``train/d_acc_<head>`` per head when there are several)."""
        self.label_space.check(labels, "ACGAN discriminator_loss")
        real, fake = self.discriminator_inputs(real, fake)
        real_logits, real_classes = self.discriminator.heads(real)
        fake_logits, fake_classes = self.discriminator.heads(fake)
        adversarial = self.adversarial_d_loss(real_logits, fake_logits)
        aux = auxiliary_classifier_loss(real_classes, labels)
        if self.hparams.classify_fakes:
            aux = aux + auxiliary_classifier_loss(fake_classes, labels)
        loss = self.add_d_regularisers(adversarial + self.hparams.aux_weight * aux, real, fake, real_logits, fake_logits, labels)
        self.log_train({"train/d_aux": aux.detach(), **self.real_accuracy(real_classes, labels)})
        self.log_train({"train/d_loss": loss.detach()}, prog_bar=True)
        return loss

    def generator_loss(self, fake: Tensor, labels: Tensor | None = None, real: Tensor | None = None) -> Tensor:
        """The adversarial G loss + aux_weight * ``-L_C`` on the fakes (G maximises L_C - L_S); logs ``train/g_aux``.
        ``real``: the real batch, for a relativistic loss."""
        self.label_space.check(labels, "ACGAN generator_loss")
        logits, classes = self.discriminator.heads(self.fakes_for_g_step(fake))
        aux = auxiliary_classifier_loss(classes, labels)
        loss = self.adversarial_g_loss(logits, real, labels) + self.hparams.aux_weight * aux
        self.log_train({"train/g_aux": aux.detach()})
        self.log_train({"train/g_loss": loss.detach()}, prog_bar=True)
        return loss

    @torch.no_grad()
    def real_accuracy(self, class_logits: list[Tensor], labels: Tensor) -> dict[str, Tensor]:
        """D's share of real images classified correctly: ``train/d_acc`` (mean over heads) and, with several heads,
        ``train/d_acc_<i>`` per head i."""
        labels = labels.long().reshape(labels.shape[0], -1)
        accuracies = [(logits.argmax(dim=1) == labels[:, h]).float().mean() for h, logits in enumerate(class_logits)]
        metrics = {"train/d_acc": torch.stack(accuracies).mean()}
        if len(accuracies) > 1:
            metrics.update({f"train/d_acc_{h}": acc for h, acc in enumerate(accuracies)})
        return metrics
