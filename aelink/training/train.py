"""Training: Adam, shuffled batches, validation on the test set every epoch, a checkpoint every epoch.

A run directory holds `checkpoint.pt` (config, weights, optimizer, RNG states, history), `history.json`,
and, at the end, the two weight halves and the figure. `resume=True` continues from the checkpoint and
gives the same weights as an uninterrupted run with the same seed. Under torchrun each process trains on
its share of each global batch (DDP); the first writes every file.

Entropy-coded (rd) models train on distortion + lmbda * bits (the prior's estimate, with uniform noise
on the latent); validation rounds the latent and reports the prior's estimate of bits per image beside
the bytes of the real codes (range coded with the tables as they would be exported now).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from aelink.data.datasets import add_noise, dataset, load_split, to_tensor
from aelink.figure import figure_for
from aelink.training.autoencoder import Autoencoder, kl_divergence, reconstruction_loss
from aelink.training.mixture import describe, fit_decoder_prior
from aelink.training.prior import rate_bits
from aelink.training.runtime import Processes, keep_freed_memory, keras_epsilon, quiet, start_as_keras
from aelink.training.steps import Steps, choose_bf16, plan
from shared.codec.config import ModelConfig
from shared.codec.weights import save_halves
from shared.codec.wire import wire_bytes

CHECKPOINT = "checkpoint.pt"
# The rd prior is a tiny network that starts ten quantization steps wide (FactorizedPrior's init_scale);
# at the model's lr the rate falls only ~25% an epoch. Measured, rd64 layout on 20,000 images: 3,192
# bits per image after one epoch at the model's lr, 837 with the prior at 10x.
PRIOR_LR_FACTOR = 10.0


@dataclass
class TrainOptions:
    out: Path
    epochs: int = 50
    batch_size: int = 128  # the global batch: split over the processes under torchrun
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decays to 0 over the run, per step
    seed: int = 0
    noise_once: bool = False  # the article draws the noise once; we draw it afresh per batch
    train_subset: int | None = None  # first N training images (tests, quick runs)
    test_subset: int | None = None
    data_dir: str | None = None
    dataset: str = "mnist"
    resume: bool = False
    threads: int | None = None  # CPU threads; default: the cores this process may use (torchrun: 1 each)
    shards: int | None = None  # threads each batch splits over (steps.py); default: one per thread
    progress: bool | None = None  # None: a bar only when stderr is a terminal
    bf16: bool | None = None  # bf16 autocast of the steps; None: steps.choose_bf16; validation is fp32
    fused: bool = True  # the fused kernels where the model has their layers (aelink/training/fused)


def load_images(opts: TrainOptions) -> tuple[torch.Tensor, torch.Tensor]:
    train, _ = load_split("train", opts.data_dir, opts.dataset)
    test, _ = load_split("test", opts.data_dir, opts.dataset)
    return to_tensor(train[: opts.train_subset]), to_tensor(test[: opts.test_subset])


class Trainer:
    def __init__(self, config: ModelConfig, opts: TrainOptions) -> None:
        keep_freed_memory()
        self.config, self.opts = config, opts
        self.procs = procs = Processes.start()
        self.bf16 = choose_bf16(opts.bf16, config.kind, config.entropy_coded)
        if opts.batch_size % procs.world:
            raise ValueError(f"batch size {opts.batch_size} does not split over {procs.world} processes")
        self.shards, self.intra = plan(opts.threads, opts.shards, procs.world, opts.batch_size // procs.world)
        torch.set_num_threads(self.intra)
        torch.manual_seed(opts.seed)
        self.model = Autoencoder(config)
        # the seed starts and steps as the article's Keras model (issue 12); the others keep He init
        eps = start_as_keras(self.model) if config.kind == "seed" else 1e-8
        self.model.use_fused(opts.fused)
        self.steps = Steps(self.procs.wrap(self.model), list(self.model.parameters()), self.shards, self.bf16)
        self.optimizer = torch.optim.Adam(self.param_groups(), lr=opts.lr, eps=eps)
        self.scheduler = self.make_scheduler()
        self.shuffle, self.noise = (torch.Generator().manual_seed(opts.seed + i) for i in (0, 1))
        self.epoch, self.history = 0, []
        opts.out.mkdir(parents=True, exist_ok=True)
        if opts.resume and (opts.out / CHECKPOINT).exists():
            self.load_checkpoint()
        if self.procs.world > 1:  # the rd prior's training noise: each process draws its own
            torch.manual_seed(opts.seed * 1000 + 7919 * self.epoch + self.procs.rank)

    def param_groups(self) -> list[dict]:
        """One group for the model; for rd models a second one for the prior, at a higher lr."""
        if not self.config.entropy_coded:
            return [{"params": list(self.model.parameters())}]
        prior = list(self.model.prior.parameters())
        mine = {id(p) for p in prior}
        rest = [p for p in self.model.parameters() if id(p) not in mine]
        return [{"params": rest}, {"params": prior, "lr": self.opts.lr * PRIOR_LR_FACTOR}]

    def make_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        if self.opts.lr_schedule == "constant":  # the spec's plain Adam
            return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0)
        if self.opts.lr_schedule == "cosine":  # measured: compact32 stalls near 24.2 dB at constant lr
            n = min(self.opts.train_subset or 10**9, dataset(self.opts.dataset).counts["train"])
            steps = self.opts.epochs * -(-n // self.opts.batch_size)
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps)
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not {self.opts.lr_schedule!r}")

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not self.procs.main:
            return
        state = {
            "config": self.config.to_json(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "history": json.dumps(self.history),
            # the global generator seeds the steps' training noise (rd, vae)
            "rng": [self.shuffle.get_state(), self.noise.get_state(), torch.get_rng_state()],
            "options": json.dumps({k: str(v) for k, v in asdict(self.opts).items()}),
        }
        torch.save(state, tmp := self.opts.out / f".{CHECKPOINT}.tmp")
        tmp.replace(self.opts.out / CHECKPOINT)
        (self.opts.out / "history.json").write_text(json.dumps(self.history, indent=1) + "\n")

    def load_checkpoint(self) -> None:
        state = torch.load(self.opts.out / CHECKPOINT, weights_only=True)
        saved = ModelConfig.from_json(state["config"])
        if saved != self.config:
            raise ValueError(f"--resume: checkpoint config {saved} differs from {self.config}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.history = state["epoch"], json.loads(state["history"])
        self.shuffle.set_state(state["rng"][0])
        self.noise.set_state(state["rng"][1])
        if len(state["rng"]) > 2:  # checkpoints before rd models did not need it
            torch.set_rng_state(state["rng"][2])

    # -- one epoch --------------------------------------------------------------------------
    def inputs(self, clean: torch.Tensor, fixed: torch.Tensor | None) -> torch.Tensor:
        if not self.config.noise:
            return clean
        if fixed is not None:
            return fixed
        return add_noise(clean, self.config.noise, self.noise)

    def train_epoch(self, train: torch.Tensor, train_noisy: torch.Tensor | None) -> dict[str, float]:
        """One pass over the shuffled training set: the mean loss (and, for rd, bits per image)."""
        self.model.train()
        order = torch.randperm(len(train), generator=self.shuffle)
        # One gather per epoch; each batch is a contiguous slice (a view; one channel: channels-last too)
        shuffled = train[order]
        noisy = None if train_noisy is None else train_noisy[order]
        starts = range(0, len(train), self.opts.batch_size)
        bar = tqdm(starts, desc=f"epoch {self.epoch + 1}/{self.opts.epochs}", leave=False,
                   disable=not (self.show_progress and self.procs.main), file=sys.stderr)
        total, bits, kl, seen = 0.0, 0.0, 0.0, 0  # kl: vae, nats per image
        for start in bar:
            batch = slice(start, start + self.opts.batch_size)
            # noise is drawn for the global batch, so every process count sees the same inputs
            x = self.inputs(shuffled[batch], None if noisy is None else noisy[batch])
            x, target = self.procs.shard(x), self.procs.shard(shuffled[batch])
            self.optimizer.zero_grad(set_to_none=True)
            terms = self.steps.run(x, target)
            if self.config.kind == "seed":  # Keras's epsilon, where Keras adds it
                keras_epsilon(self.optimizer, self.scheduler.last_epoch + 1)
            self.optimizer.step()
            self.scheduler.step()
            total += terms["loss"] * len(x)
            bits += terms.get("bits", 0.0) * len(x)
            kl += terms.get("kl", 0.0) * len(x)
            seen += len(x)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        total, bits, kl, seen = self.procs.sum([total, bits, kl, seen])
        if self.config.entropy_coded:  # the prior's estimate on noisy latents
            return {"train_loss": total / seen, "train_bits": bits / seen}
        if self.config.kind == "vae":
            return {"train_loss": total / seen, "train_kl": kl / seen}
        return {"train_loss": total / seen}

    @torch.no_grad()
    def validate(self, test: torch.Tensor, test_inputs: torch.Tensor) -> dict[str, float]:
        self.model.eval()
        if self.config.entropy_coded:
            return self.validate_rd(test, test_inputs)
        loss, mse = 0.0, 0.0
        for x, target in zip(test_inputs.split(1000), test.split(1000), strict=True):
            logits = self.model.decoder.logits(self.model.encoder(x))
            loss += reconstruction_loss(logits, target, self.config.loss).item() * len(x)
            mse += torch.mean((torch.sigmoid(logits) - target) ** 2).item() * len(x)
        mse /= len(test)
        row = {"val_loss": loss / len(test), "val_mse": mse,
               "val_psnr_of_mean_mse": 10 * torch.log10(torch.tensor(1.0 / mse)).item()}
        if self.config.kind == "vae":  # the mean decoded (as sent), and the KL term beside it
            kl = sum(kl_divergence(*self.model.encoder.moments(x)).sum().item() for x in test_inputs.split(1000))
            row["val_kl"] = kl / len(test)
            row["val_loss"] += self.config.beta * row["val_kl"] / test[0].numel()
        return row

    def validate_rd(self, test: torch.Tensor, test_inputs: torch.Tensor) -> dict[str, float]:
        """Rounded latents: loss, MSE, PSNR both ways, the prior's estimate of bits per image, and the
        mean bytes of the real codes, each with its varint length as on the wire."""
        self.model.build_tables()  # the tables export would write now; training never reads them
        loss = bits = mse = psnr = 0.0
        code_bytes = 0
        for x, target in zip(test_inputs.split(1000), test.split(1000), strict=True):
            y = self.model.encoder(x)
            y_hat, likelihoods = self.model.quantize(y)  # rounded, as the real codes hold them
            logits = self.model.decoder.logits(y_hat)
            batch_bits = rate_bits(likelihoods).item()
            per_image = ((torch.sigmoid(logits) - target) ** 2).flatten(1).mean(1)  # (B,)
            loss += reconstruction_loss(logits, target, self.config.loss).item() * len(x)
            loss += self.config.lmbda * batch_bits / target[0].numel()
            bits += batch_bits
            mse += per_image.sum().item()
            psnr += (10 * torch.log10(1.0 / per_image.clamp_min(1e-10))).sum().item()
            code_bytes += sum(wire_bytes(self.model.encoder.entropy.compress(y)))
        n = len(test)
        return {"val_loss": loss / n, "val_mse": mse / n,
                "val_psnr_of_mean_mse": 10 * torch.log10(torch.tensor(n / mse)).item(),
                "val_psnr": psnr / n, "val_bits": bits / n,
                "val_bytes_estimate": bits / n / 8, "val_bytes": code_bytes / n}

    @property
    def show_progress(self) -> bool:
        return sys.stderr.isatty() if self.opts.progress is None else self.opts.progress

    # -- the whole run ----------------------------------------------------------------------
    def fit(self, train: torch.Tensor, test: torch.Tensor, log=print) -> list[dict]:
        # Validation noise is drawn once from its own seed, so epochs are compared on equal inputs.
        val_gen = torch.Generator().manual_seed(self.opts.seed + 2)
        test_inputs = add_noise(test, self.config.noise, val_gen) if self.config.noise else test
        train_noisy = None
        if self.config.noise and self.opts.noise_once:
            train_noisy = add_noise(train, self.config.noise, torch.Generator().manual_seed(self.opts.seed + 3))
        while self.epoch < self.opts.epochs:
            self.run_epoch(train, test, test_inputs, train_noisy, log)
        return self.history

    def run_epoch(self, train: torch.Tensor, test: torch.Tensor, test_inputs: torch.Tensor,
                  train_noisy: torch.Tensor | None = None, log=print) -> dict:
        """Train one epoch, then (first process) validate, checkpoint and log; returns the history row."""
        start, cpu = time.perf_counter(), time.process_time()
        train_stats = self.train_epoch(train, train_noisy)
        seconds, (cpu,) = time.perf_counter() - start, self.procs.sum([time.process_time() - cpu])
        self.epoch += 1
        # cpu_seconds: all threads of all processes; on a shared machine the steadier figure
        row = {"epoch": self.epoch, **train_stats, "seconds": seconds, "cpu_seconds": cpu,
               "batch_size": self.opts.batch_size, "processes": self.procs.world,  # the global batch
               "shards": self.shards, "bf16": self.bf16, "fused": self.model.fused}
        if self.procs.main:
            torch.set_num_threads(self.shards * self.intra)  # one thread validates: give it them all
            row.update(self.validate(test, test_inputs))
            torch.set_num_threads(self.intra)
        self.history.append(row)
        self.save_checkpoint()
        if self.procs.main:
            log(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        return row

    def finish(self, test: torch.Tensor, train: torch.Tensor, log=print) -> str:
        """Fit a vae's mixture prior if it has one, write the halves and figure; returns the fingerprint."""
        self.model.eval()
        if self.config.prior_components:
            log(describe(fit_decoder_prior(self.model, train, self.opts.seed)))
            self.save_checkpoint()  # the fitted prior in the checkpoint too: `aelink export` then works
        fingerprint = save_halves(self.config, self.model.export_state(), self.opts.out)
        figure_for(self.model, test[:10], self.config.noise, self.opts.seed, self.opts.out / "figure.png")
        return fingerprint


def train(config: ModelConfig, opts: TrainOptions, log=print) -> tuple[list[dict], str | None]:
    """Train and write the halves; returns the history and the pair fingerprint (None in the processes
    after the first under torchrun, which write nothing)."""
    trainer = Trainer(config, opts)
    procs = trainer.procs
    if not procs.main:
        log = quiet
    try:
        train_x, test_x = load_images(opts)
        log(f"training {config.name}: {len(train_x)} train / {len(test_x)} test images, "
            f"epochs {trainer.epoch + 1}..{opts.epochs}, batch {opts.batch_size}"
            + (f" ({procs.world} processes x {opts.batch_size // procs.world})" if procs.world > 1 else "")
            + f", out {opts.out}")
        history = trainer.fit(train_x, test_x, log)
        fingerprint = trainer.finish(test_x, train_x, log) if procs.main else None
        procs.barrier()  # the others leave once the halves are written
    finally:
        trainer.steps.close()
        trainer.steps = None  # DDP's reducer goes before its process group, not at interpreter exit
        procs.stop()
    log(f"wrote {opts.out}/encoder.safetensors, decoder.safetensors, figure.png (pair {fingerprint})")
    return history, fingerprint
