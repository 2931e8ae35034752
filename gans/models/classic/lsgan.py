"""LSGAN: Least Squares Generative Adversarial Networks (Mao et al. 2017, arXiv:1611.04076).

The least-squares loss of eq. 2 with the 0-1 coding a = 0, b = 1, c = 1 (section 3.2.2) on the
DCGAN networks, Adam lr 2e-4, beta1 0.5.

Deviations from the paper: the networks are DCGAN's (the paper's own architecture, figure 3,
targets 112x112 LSUN scenes); for MNIST-sized data that is what the paper's comparison uses.
"""

from __future__ import annotations

from gans.models.classic.dcgan import DCGAN


class LSGAN(DCGAN):
    """DCGAN with the least-squares loss."""

    def __init__(self, loss: str = "least_squares", **kwargs) -> None:
        """
        Args:
            loss: the adversarial loss; least_squares is what makes this LSGAN.
            **kwargs: the arguments of :class:`gans.models.classic.dcgan.DCGAN`.
        """
        super().__init__(loss=loss, **kwargs)
