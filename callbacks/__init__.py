"""Lightning callbacks for GAN training: generator EMA, sample pictures, prediction writing, FID/KID,
perceptual path length,
StyleGAN3's equivariance metrics, conditional accuracy, image-to-image pictures, checkpoints every N kimg, progressive growing, a progress bar counting kimg (SPEC section 5)."""

from callbacks.checkpoint import KimgCheckpoint
from callbacks.cond_acc import ConditionalAccuracy
from callbacks.ema import EMA
from callbacks.equivariance import Equivariance
from callbacks.fid import FID
from callbacks.lazy_regularization import (
    LazyRegularization,  # removed: refuses, naming the model settings
)
from callbacks.ppl import PPL
from callbacks.progress import KimgProgressBar
from callbacks.progressive import ProgressiveGrowing
from callbacks.run_id import WandbRunId
from callbacks.sample_writer import SampleWriter
from callbacks.samples import SampleGrid
from callbacks.throughput import ImagesPerSecond
from callbacks.translation_grid import TranslationGrid

__all__ = ["ConditionalAccuracy", "EMA", "Equivariance", "FID", "ImagesPerSecond", "KimgCheckpoint", "KimgProgressBar", "LazyRegularization", "PPL", "ProgressiveGrowing", "SampleGrid", "SampleWriter", "TranslationGrid", "WandbRunId"]
