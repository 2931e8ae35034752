"""WGAN: Wasserstein GAN (Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875).

Algorithm 1: a critic without sigmoid maximises E[f(x)] - E[f(G(z))], its weights clipped to
[-0.01, 0.01] after each step, RMSProp with lr 5e-5, batch 64. The critic trains n_critic = 5
times per generator step, and 100 times for the first 25 generator steps and every 500th
(the reference code's schedule, section 4.2). Networks: DCGAN's, batch norm kept in the critic.
"""

from __future__ import annotations

from gans.models.classic.dcgan import DCGAN
from gans.training.gan_module import OptimizerName


class WGAN(DCGAN):
    """DCGAN networks trained as a Wasserstein critic and generator with weight clipping."""

    def __init__(
        self,
        loss: str = "wasserstein",
        optimizer: OptimizerName = "rmsprop",
        lr_g: float = 5e-5,
        lr_d: float = 5e-5,
        clip_value: float = 0.01,
        n_critic: int = 5,
        n_critic_boost: int = 100,
        boost_first_g_steps: int = 25,
        boost_every_g_steps: int = 500,
        **kwargs,
    ) -> None:
        """
        Args:
            loss: wasserstein.
            optimizer: rmsprop (the paper found momentum-based optimizers unstable).
            lr_g: generator learning rate (paper: 5e-5).
            lr_d: critic learning rate (paper: 5e-5).
            clip_value: weight clipping c (paper: 0.01).
            n_critic: critic steps per generator step (paper: 5).
            n_critic_boost: critic steps during the boost (paper code: 100); set equal to n_critic to turn off.
            boost_first_g_steps: boost for the first this many generator steps (paper code: 25).
            boost_every_g_steps: and at every this-many-th generator step (paper code: 500); 0 = never.
        """
        super().__init__(loss=loss, optimizer=optimizer, lr_g=lr_g, lr_d=lr_d, clip_value=clip_value, n_critic=n_critic, **kwargs)

    def critic_steps(self) -> int:
        """100 critic steps for the first 25 generator steps and every 500th, else n_critic."""
        hp = self.hparams
        boost = self.g_steps < hp.boost_first_g_steps or (hp.boost_every_g_steps > 0 and self.g_steps % hp.boost_every_g_steps == 0)
        return hp.n_critic_boost if boost else hp.n_critic
