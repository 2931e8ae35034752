"""WGAN-GP: Improved Training of Wasserstein GANs (Gulrajani et al. 2017, arXiv:1704.00028).

Algorithm 1: the Wasserstein critic loss plus lambda E[(||grad D(x_hat)||_2 - 1)^2] on random
interpolates x_hat (eq. 3), lambda = 10, n_critic = 5, Adam lr 1e-4, betas (0, 0.9). No batch
norm in the critic (section 4: it breaks the per-sample penalty); layer norm is offered as
the paper's suggested drop-in (``d_norm: layer``).

Deviations from the paper: the networks are DCGAN's (the paper's MNIST model is a smaller
custom conv net); the critic uses no normalisation by default.
"""

from __future__ import annotations

from gans.errors import ConfigError
from gans.models.classic.dcgan import DCGAN
from gans.nn.basic import Norm


class WGANGP(DCGAN):
    """DCGAN networks, Wasserstein loss and the gradient penalty."""

    def __init__(
        self,
        loss: str = "wasserstein",
        gp_weight: float = 10.0,
        d_norm: Norm = "none",
        n_critic: int = 5,
        lr_g: float = 1e-4,
        lr_d: float = 1e-4,
        betas: tuple[float, float] = (0.0, 0.9),
        **kwargs,
    ) -> None:
        """
        Args:
            loss: wasserstein.
            gp_weight: lambda (paper: 10).
            d_norm: critic normalisation: none (default) or layer; batch breaks the penalty.
            n_critic: critic steps per generator step (paper: 5).
            lr_g: generator learning rate (paper: 1e-4).
            lr_d: critic learning rate (paper: 1e-4).
            betas: Adam betas (paper: 0, 0.9).
        """
        if d_norm == "batch":
            raise ConfigError("WGAN-GP's critic must not use batch norm (it couples samples in the penalty): set d_norm to 'none' or 'layer'.")
        super().__init__(loss=loss, gp_weight=gp_weight, d_norm=d_norm, n_critic=n_critic, lr_g=lr_g, lr_d=lr_d, betas=betas, **kwargs)
