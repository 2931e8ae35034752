"""gans: generative adversarial networks for PyTorch Lightning, one paper-faithful module per variant."""

from gans.acgan import ACGAN
from gans.base import GANModule
from gans.biggan import BigGAN
from gans.core import AdversarialModule
from gans.cgan import CGAN
from gans.dcgan import DCGAN
from gans.gan import GAN
from gans.lsgan import LSGAN
from gans.progan import ProGAN
from gans.sagan import SAGAN
from gans.sngan import ProjectionGAN, SNGAN
from gans.stylegan import StyleGAN
from gans.stylegan2 import StyleGAN2
from gans.wgan import WGAN
from gans.wgan_gp import WGANGP

__all__ = ["AdversarialModule", "GANModule", "GAN", "CGAN", "DCGAN", "ACGAN", "LSGAN", "ProGAN", "SAGAN", "BigGAN", "SNGAN", "ProjectionGAN", "StyleGAN", "StyleGAN2", "WGAN", "WGANGP"]
__version__ = "0.1.0"
