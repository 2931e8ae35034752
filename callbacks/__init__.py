"""Lightning callbacks for GAN training: sample pictures and prediction writing (EMA, FID and more follow SPEC section 5)."""

from callbacks.sample_writer import SampleWriter
from callbacks.samples import SampleGrid

__all__ = ["SampleGrid", "SampleWriter"]
