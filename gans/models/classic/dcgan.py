"""DCGAN: Unsupervised Representation Learning with Deep Convolutional GANs
(Radford, Metz & Chintala 2015, arXiv:1511.06434).

Section 3 guidelines: strided convolutions in D and fractionally-strided (transposed)
convolutions in G, no pooling or fully connected hidden layers, batch norm in both networks
except G's output and D's input layers, ReLU in G with tanh output, LeakyReLU(0.2) in D.
Section 4: weights ~ N(0, 0.02), Adam lr 2e-4, beta1 0.5, batch 128.

The widths follow the reference implementation (PyTorch examples, ngf = ndf = 64, no biases):
at 64x64 RGB and z_dim 100, G has 3,576,704 parameters and D 2,765,568. Any power-of-two
resolution >= 16 works: each doubling adds one stride-2 layer to both networks.

Deviations from the paper: none in the networks; the projection of z in the paper's
figure 1 is a 4x4 transposed convolution, as in the reference code.
"""

from __future__ import annotations

from torch import Tensor, nn

from gans.checks import check_resolution
from gans.nn.basic import AlwaysDropout, Norm, dcgan_init_, norm2d
from gans.training.gan_module import GANModule

MIN_RESOLUTION = 16


def dcgan_widths(img_resolution: int, base_width: int) -> list[int]:
    """Channel widths of D's stride-2 layers from the input down to 4x4: base, 2 base, 4 base, ...

    G uses the same list reversed, from 4x4 up to the output.
    """
    n_layers = check_resolution(img_resolution, MIN_RESOLUTION, "DCGAN") - 2
    return [base_width * 2**i for i in range(n_layers)]


class DCGANGenerator(nn.Module):
    """z [N, z_dim] -> 4x4 -> ... -> image [N, C, R, R] in [-1, 1].

    ``dropout`` > 0 (:class:`gans.nn.basic.AlwaysDropout`, on at test time too) follows every hidden layer but the last,
    as pix2pix drops only in its decoder's coarser layers: dropped channels of the last one print straight into the
    pixels as speckle.
    """

    def __init__(self, z_dim: int, img_resolution: int, img_channels: int, ngf: int, dropout: float = 0.0) -> None:
        super().__init__()
        widths = dcgan_widths(img_resolution, ngf)[::-1]  # e.g. [512, 256, 128, 64] at 64 px
        drops = [dropout] * (len(widths) - 1) + [0.0]  # per hidden layer; p = 0 is the identity and keeps the state-dict indices
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False),  # project z to 4x4
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
            AlwaysDropout(drops[0]),
        ]
        for w_in, w_out, p in zip(widths[:-1], widths[1:], drops[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU(True), AlwaysDropout(p)]
        layers += [nn.ConvTranspose2d(widths[-1], img_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init_)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z[:, :, None, None])  # [N, z_dim, 1, 1] -> [N, C, R, R]


class DCGANDiscriminator(nn.Module):
    """image [N, C, R, R] -> ... -> 4x4 -> logit [N]. ``norm`` replaces batch norm (WGAN-GP)."""

    def __init__(self, img_resolution: int, img_channels: int, ndf: int, norm: Norm = "batch") -> None:
        super().__init__()
        widths = dcgan_widths(img_resolution, ndf)  # e.g. [64, 128, 256, 512] at 64 px
        layers: list[nn.Module] = [nn.Conv2d(img_channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), norm2d(norm, w_out), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False))  # 4x4 -> 1x1 logit
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init_)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(x).flatten()

    def features(self, x: Tensor) -> Tensor:
        """The 4x4 feature map before the logit layer, ``[N, 8 ndf, 4, 4]`` at 64 px (ACGAN's heads read it)."""
        return self.net[:-1](x)

    def logit(self, features: Tensor) -> Tensor:
        """The real/fake logit ``[N]`` of :meth:`features`' output: ``forward(x) == logit(features(x))``."""
        return self.net[-1](features).flatten()


class DCGAN(GANModule):
    """DCGAN with the non-saturating loss and the paper's Adam settings."""

    def __init__(
        self,
        img_resolution: int = 64,
        img_channels: int = 3,
        z_dim: int = 100,
        ngf: int = 64,
        ndf: int = 64,
        d_norm: Norm = "batch",
        g_dropout: float = 0.0,
        **kwargs,
    ) -> None:
        """
        Args:
            img_resolution: image side, a power of two >= 16 (32 for padded MNIST, 64 in the paper).
            img_channels: 1 for MNIST, 3 for RGB.
            z_dim: latent size (paper: 100).
            ngf: width of G's last hidden layer; the others double towards 4x4.
            ndf: width of D's first layer; the others double towards 4x4.
            d_norm: normalisation in D's hidden layers: batch (paper), layer or none.
            g_dropout: dropout after G's hidden layers, on at train and test time; 0 = off.
            **kwargs: the training recipe of :class:`gans.training.gan_module.GANModule` (loss, lr_g, lr_d, tricks, ...).
        """
        super().__init__(
            generator=DCGANGenerator(z_dim, img_resolution, img_channels, ngf, g_dropout),
            discriminator=DCGANDiscriminator(img_resolution, img_channels, ndf, d_norm),
            z_dim=z_dim,
            **kwargs,
        )
        self.data_shape = (img_channels, img_resolution, img_resolution)
