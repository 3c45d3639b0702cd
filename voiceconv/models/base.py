"""What every trainable model offers the one training loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

class TrainableModel(nn.Module):
    """A model that owns its optimizers and schedulers and takes one optimization step per ``train_step``.

    The training loop wraps ``train_step`` in autocast and, under ``torchrun``,
    swaps each trained network for its DistributedDataParallel wrapper for the
    step (see :mod:`voiceconv.train.distributed`); models never know whether
    they run distributed or in mixed precision.
    """

    def __init__(self) -> None:
        super().__init__()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
        self.generator: torch.Generator | None = None  # the model's own randomness (noise, masks), checkpointed

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimization step on ``batch``; returns named scalar losses."""
        raise NotImplementedError

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[nn.Parameter]) -> None:
        """zero_grad -> backward (gradients averaged across processes under DDP) -> step, for ``parameters`` only."""
        parameters = list(parameters)
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=parameters)
        optimizer.step()

    def training_state(self) -> dict:
        """Optimizer, scheduler and random-generator states, for checkpoints."""
        state = {
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
        }
        if self.generator is not None:
            state["rng"] = self.generator.get_state()
        return state

    def load_training_state(self, state: dict) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        if self.generator is not None:
            self.generator.set_state(state["rng"])


def linear_decay(total_steps: int, decay_start: int) -> Callable[[int], float]:
    """Learning-rate factor: 1 until ``decay_start``, then linearly to 0 at ``total_steps`` (Zhu et al. 2017)."""

    def factor(step: int) -> float:
        if step < decay_start:
            return 1.0
        return max(0.0, 1.0 - (step - decay_start) / max(1, total_steps - decay_start))

    return factor


class evaluating:
    """Context manager: ``model.eval()`` inside, the previous mode restored after."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)
