"""Lightning callbacks for GAN training: sample pictures (EMA, FID and more follow SPEC section 5)."""

from callbacks.samples import SampleGrid

__all__ = ["SampleGrid"]
