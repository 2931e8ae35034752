"""Where ``callbacks.LazyRegularization`` went.

StyleGAN2's lazy R1 and path length regularisation (Karras et al. 2020, arXiv:1912.04958, section 3.1,
Appendix B and eq. 4) are training phases of the model now (:mod:`gans.training.phases`,
:meth:`gans.training.gan_module.GANModule.training_phases`), set by ``model.init_args.r1_gamma``,
``r1_interval``, ``pl_weight``, ``pl_interval``, ``pl_batch_shrink`` and ``pl_decay``; no callback steps an
optimizer. The name stays so that a config that still lists the callback fails in one line that says
where its settings go; its old checkpoints load (their path length mean moves into the model's
``pl_mean`` buffer).
"""

from __future__ import annotations

import lightning as L

from gans.errors import ConfigError


class LazyRegularization(L.Callback):
    """Removed: refuses to be built, naming the model settings that replace it."""

    def __init__(
        self,
        r1_gamma: float = 10.0,
        r1_interval: int = 16,
        pl_weight: float = 0.0,
        pl_interval: int = 4,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
    ) -> None:
        settings = dict(r1_gamma=r1_gamma, r1_interval=r1_interval, pl_weight=pl_weight, pl_interval=pl_interval,
                        pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay)
        raise ConfigError(
            "callbacks.LazyRegularization is gone: lazy R1 and path length are phases of the model; remove the callback and set "
            + ", ".join(f"model.init_args.{name}: {value}" for name, value in settings.items()) + "."
        )
