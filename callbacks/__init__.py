"""Lightning callbacks for GAN training: generator EMA, sample pictures, prediction writing (FID and more follow SPEC section 5)."""

from callbacks.ema import EMA
from callbacks.sample_writer import SampleWriter
from callbacks.samples import SampleGrid

__all__ = ["EMA", "SampleGrid", "SampleWriter"]
