"""Data parallelism: every family's trained networks are wrapped in DDP for the step, and ranks stay in step."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig
from voiceconv.models.gan import DCGAN, GANConfig
from voiceconv.models.vae import VAE, DebiasingVAE, FaceClassifier, VAEConfig
from voiceconv.train.distributed import DataParallel, Topology, broadcast_parameters, trained_networks

TINY_CYCLEGAN = CycleGANConfig(generator_channels=8, residual_channels=16, residual_blocks=1, discriminator_channels=8,
                               discriminator_layers=2, ema_decay=0.9)
TINY_VAE = VAEConfig(channels=(8, 16), latent=4)
TINY_GAN = GANConfig(latent=8, generator_channels=(16, 8), discriminator_channels=(8, 16))


def build(family: str, seed: int):
    """A tiny model of ``family`` and a function drawing its batches with a torch generator."""
    if family == "cyclegan":
        images = lambda g: torch.randn(2, 1, 16, 16, generator=g)  # noqa: E731 [B, 1, n_mels, frames]
        return CycleGAN(1, 16, TINY_CYCLEGAN, seed=seed), lambda g: {"A": images(g), "B": images(g)}
    if family == "gan":
        return DCGAN(3, 16, 16, TINY_GAN, seed=seed), lambda g: {"images": torch.rand(4, 3, 16, 16, generator=g) * 2 - 1}
    labelled = lambda g: {"images": torch.rand(4, 3, 16, 16, generator=g) * 2 - 1,  # noqa: E731
                          "labels": torch.tensor([1, 0, 1, 0])}
    if family == "dbvae":
        return DebiasingVAE(3, 16, 16, TINY_VAE, seed=seed), labelled
    if family == "classifier":
        return FaceClassifier(3, 16, 16, TINY_VAE, seed=seed), labelled
    return VAE(3, 16, 16, TINY_VAE, seed=seed), labelled


FAMILIES = ["cyclegan", "gan", "vae", "dbvae", "classifier"]


def test_the_trained_networks_are_the_optimized_children():
    assert list(trained_networks(build("cyclegan", 0)[0])) == ["G_AB", "G_BA", "D_A", "D_B"]  # not the EMA copies
    assert list(trained_networks(build("gan", 0)[0])) == ["G", "D"]
    assert list(trained_networks(build("vae", 0)[0])) == ["encoder", "decoder"]
    assert list(trained_networks(build("classifier", 0)[0])) == ["encoder"]


def test_a_network_only_partly_optimized_is_refused():
    model = build("gan", 0)[0]
    model.optimizers["generator"] = torch.optim.Adam(list(model.G.parameters())[:1])
    with pytest.raises(ValueError, match="DCGAN.G: only some of its parameters"):
        trained_networks(model)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rank(rank: int, family: str, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model, draw = build(family, seed=rank)  # different initial weights: the broadcast must make them equal
    broadcast_parameters(model)
    data_parallel = DataParallel(model, Topology(rank, 2, torch.device("cpu")))
    generator = torch.Generator().manual_seed(100 + rank)  # different batches on the two ranks
    for _ in range(3):
        with data_parallel.step():
            model.train_step(draw(generator))
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    both = [torch.zeros_like(weights) for _ in range(2)]
    dist.all_gather(both, weights)
    if rank == 0:
        results.put({"difference": float((both[0] - both[1]).abs().max()),
                     "keys": list(model.state_dict()), "children": [type(c).__name__ for c in model.children()]})
    dist.barrier()
    # Leave without tearing gloo down: in 1 of 5 CI runs one rank's teardown aborted (SIGABRT, "terminate called
    # without an active exception") after the result was in; what is tested here is already decided.
    os._exit(0)


@pytest.mark.parametrize("family", FAMILIES)
def test_two_gloo_ranks_on_different_batches_keep_identical_weights(family):
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_rank, args=(family, _free_port(), results), nprocs=2)
    outcome = results.get()
    assert outcome["difference"] == 0.0  # gradients were averaged: the ranks took the same steps
    assert not [key for key in outcome["keys"] if "module." in key and not key.startswith("ema.")]  # no DDP prefix
    assert "DistributedDataParallel" not in outcome["children"]  # the plain networks are back after the step


def test_without_averaging_the_same_setup_diverges():
    """The check above can fail: two processes stepping on their own batches end with different weights."""
    results = []
    for rank in range(2):
        torch.manual_seed(0)
        model, draw = build("gan", seed=0)
        generator = torch.Generator().manual_seed(100 + rank)
        for _ in range(3):
            model.train_step(draw(generator))
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert float((results[0] - results[1]).abs().max()) > 0
