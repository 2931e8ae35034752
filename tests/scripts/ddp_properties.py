"""DDP with 2 CPU processes: what a data-parallel GAN step must get right, recorded per rank.

Run by tests/test_ddp.py as ``python ddp_properties.py OUT_DIR``; Lightning's launcher starts rank 1 by
re-running this command. Each rank writes ``OUT_DIR/rank{r}.pt`` with:

- ``first_fake``: its first batch of fakes (ranks must draw different latents);
- ``d_before`` / ``d_after_first``, ``real`` / ``fake``: D before and after the first D step, and that
  step's inputs, so the test can recompute each rank's gradient and check the update used their mean;
- ``g_inputs`` / ``g_before`` / ``g_after_first``: the same for the first G step, whose optimizer
  trains two networks (the generator and a latent pre-map), both of which must be reduced;
- ``d_around_nan``: D before and after the batch whose D loss is NaN on rank 1 only, with finite gradients
  (a NaN constant added): only the core's poisoning of that loss can tell rank 0 to skip the update;
- ``buffers_around_save``: this rank's floating-point buffers (D's batch-norm statistics, which follow each
  rank's own data, and a float64 buffer holding a rank-dependent value) before and after a checkpoint is
  written mid-fit to ``OUT_DIR/mid.ckpt``;
- ``final``, ``unused_state``, counters.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gans import DCGAN
from gans.training.core import parameters_of

NAN_BATCH = 3
SAVE_BATCH = 2
LR = 0.05


class Recorded(DCGAN):
    def __init__(self) -> None:
        super().__init__(img_resolution=16, img_channels=1, z_dim=8, ngf=4, ndf=4, optimizer="sgd", momentum=0.5, lr_g=LR, lr_d=LR)
        self.premap = nn.Linear(8, 8)  # trained by G's optimizer together with the generator
        self.discriminator.unused = nn.Linear(2, 2)  # in D's optimizer, never used: must never be stepped
        self.discriminator.register_buffer("precise", torch.ones(3, dtype=torch.float64))  # 1 + rank-dependent 1e-12s
        self.record: dict = {}
        self.checkpoint_path: Path | None = None

    def forward(self, z, labels=None):
        return self.generator(self.premap(z), labels)

    def configure_optimizers(self):
        opt_d, _ = super().configure_optimizers()
        return opt_d, torch.optim.SGD(parameters_of([self.generator, self.premap]), lr=LR, momentum=0.5)

    def discriminator_loss(self, real, fake, labels=None):
        loss = super().discriminator_loss(real, fake, labels)
        if "first_fake" not in self.record:
            self.record.update(first_fake=fake.detach().clone(), real=real.detach().clone(), fake=fake.detach().clone(),
                               d_before=snapshot(self.discriminator))
        if self.batches == NAN_BATCH and self.trainer.global_rank == 1:
            loss = loss + float("nan")  # a NaN loss whose gradients are finite
        return loss

    def run_phase(self, phase, opt, real, labels):
        if phase.name != "Gmain":
            return super().run_phase(phase, opt, real, labels)
        if "g_before" not in self.record:
            state = torch.get_rng_state()
            self.record["g_z"] = self.sample_z(real.shape[0])  # the latents the step is about to draw
            torch.set_rng_state(state)
            self.record.update(g_before={**snapshot(self.generator, "generator."), **snapshot(self.premap, "premap.")},
                               g_d_state=snapshot(self.discriminator))
        super().run_phase(phase, opt, real, labels)
        if "g_after_first" not in self.record:
            self.record["g_after_first"] = {**snapshot(self.generator, "generator."), **snapshot(self.premap, "premap.")}

    def after_discriminator_step(self):
        if "d_after_first" not in self.record:
            self.record["d_after_first"] = snapshot(self.discriminator)

    def on_train_batch_start(self, batch, batch_idx):
        response = super().on_train_batch_start(batch, batch_idx)
        if self.batches == NAN_BATCH:
            self.record["d_around_nan"] = [snapshot(self.discriminator)]
        return response

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.batches == NAN_BATCH + 1:
            self.record["d_around_nan"].append(snapshot(self.discriminator))
        if self.batches == SAVE_BATCH:
            self.discriminator.precise.fill_(1 + 1e-12 * (self.trainer.global_rank + 1))
            before = floating_buffers(self)
            self.trainer.save_checkpoint(self.checkpoint_path)  # on every rank; rank 0 writes it
            self.record["buffers_around_save"] = (before, floating_buffers(self))


def snapshot(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().clone() for k, v in module.state_dict().items()}


def floating_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.detach().clone() for name, b in module.named_buffers() if b.is_floating_point()}


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    L.seed_everything(0)
    model = Recorded()
    model.checkpoint_path = out_dir / "mid.ckpt"
    images = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loader = DataLoader(TensorDataset(images, torch.zeros(64, dtype=torch.long)), batch_size=8, shuffle=True)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader)
    opt_d = trainer.optimizers[0]
    unused = model.discriminator.unused.weight
    model.record.update(
        final=snapshot(model), unused_state=len(opt_d.state.get(unused, {})), unused_grad=unused.grad,
        g_steps=model.g_steps, images_seen=model.images_seen, nonfinite_steps=model.nonfinite_steps,
    )
    torch.save(model.record, out_dir / f"rank{trainer.global_rank}.pt")
