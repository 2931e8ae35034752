"""The conditional family's label layers: class embedding, conditional batch norm and the projection
discriminator's head (Miyato & Koyama 2018, arXiv:1802.05637)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gans.errors import ConfigError
from gans.nn.spectral import sn_linear, spectral_norm


class ClassEmbedding(nn.Module):
    """Labels of a :class:`gans.labels.LabelSpace` to vectors ``[N, dim]``: one learned row per class.

    One head: ``embed(y)``. Several heads (hair and eye colour): the sum of each head's row, which is a linear
    map of the concatenated one-hot vector (the tag vector). This is the projection discriminator's ``V`` and
    BigGAN's shared embedding. ``sn`` spectrally normalises the table (the projection D of Miyato & Koyama).
    """

    def __init__(self, heads: tuple[int, ...] | list[int] | int, dim: int, sn: bool = False) -> None:
        super().__init__()
        self.heads = (int(heads),) if isinstance(heads, int) else tuple(int(h) for h in heads)
        if not self.heads or min(self.heads) < 1:
            raise ConfigError(f"ClassEmbedding needs at least one head with >= 1 class, got {heads}.")
        self.embedding = spectral_norm(nn.Embedding(sum(self.heads), dim), sn)
        self.register_buffer("offsets", torch.tensor([0, *self.heads[:-1]]).cumsum(0), persistent=False)

    def forward(self, labels: Tensor) -> Tensor:
        labels = labels.long().reshape(labels.shape[0], len(self.heads))
        return self.embedding(labels + self.offsets).sum(dim=1)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are functions of a per-sample condition vector ``y [N, cond_dim]``:
    ``BN(x) * (1 + W_gain y) + W_bias y`` (de Vries et al. 2017; Dumoulin et al. 2017).

    With ``y`` the one-hot class vector every class has its own gain and bias, initialised to 1 and 0: the
    class-conditional BN of the projection cGAN (Miyato & Koyama 2018, section 4) and SAGAN. BigGAN feeds
    ``y`` = [shared class embedding, z chunk] (Brock et al. 2018, section 3 and appendix B) through
    spectrally normalised linear maps (``sn``). The normalisation is an ``nn.BatchNorm2d`` without affine
    parameters, so ``nn.SyncBatchNorm.convert_sync_batchnorm`` turns it into a synchronised one.
    """

    def __init__(self, num_features: int, cond_dim: int, sn: bool = False, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.gain = sn_linear(cond_dim, num_features, bias=False, sn=sn)
        self.bias = sn_linear(cond_dim, num_features, bias=False, sn=sn)
        if not sn:  # per-class gain 1 and bias 0 at the start; spectrally normalised maps cannot be zero
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        gain = 1 + self.gain(y)
        bias = self.bias(y)
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


def projection(features: Tensor, embedded_labels: Tensor) -> Tensor:
    """The projection discriminator's class term ``<embed(y), phi(x)>`` per sample (Miyato & Koyama 2018,
    arXiv:1802.05637, eq. 3): ``D(x, y) = psi(phi(x)) + projection(phi(x), embed(y))``."""
    return (features * embedded_labels).sum(dim=1)


class ProjectionHead(nn.Module):
    """The projection discriminator's output layer (Miyato & Koyama 2018, arXiv:1802.05637, eq. 3):
    ``psi(phi) + <embed(y), phi>``, ``psi`` a spectrally normalised linear map of the pooled features ``phi [N, F]``
    and ``embed`` a spectrally normalised :class:`ClassEmbedding`. Unconditional (``heads`` empty): ``psi(phi)``
    only, SNGAN's output layer. Shared by SNGAN / the projection cGAN, SAGAN and BigGAN."""

    def __init__(self, features: int, heads: tuple[int, ...] | list[int] = (), sn: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.linear = sn_linear(features, 1, bias=bias, sn=sn)
        self.embed = ClassEmbedding(tuple(heads), features, sn=sn) if heads else None

    def forward(self, phi: Tensor, labels: Tensor | None = None) -> Tensor:
        out = self.linear(phi).squeeze(1)
        if self.embed is None:
            return out
        if labels is None:
            raise ConfigError("The projection discriminator is conditional: pass the labels (class indices, see gans.labels).")
        return out + projection(phi, self.embed(labels))
