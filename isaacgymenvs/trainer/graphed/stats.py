"""Device-side versions of rl_games' host-synchronising bookkeeping, with the same arithmetic.

rl_games updates its episode meters with `dones.nonzero()` (a host sync every env step), its
input/value normalisers by rebinding module buffers (which a CUDA graph cannot follow: a replay
would keep reading the buffer that existed at capture time), and its learning rate from
`kl.item()` after every minibatch. Here each becomes fixed-shape tensor math writing in place.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class DeviceAverageMeter(nn.Module):
    """rl_games' `AverageMeter` (mean of the last `max_size` episodes, block-weighted), fed by a mask.

    `update_masked(values [N, D], mask [N])` is `AverageMeter.update(values[mask])` without the
    boolean index: same weights (the step's batch counts min(k, max_size), the old mean the rest).
    `current_size` and `get_mean()` read the device: call them once per epoch, not per step.
    `get_mean()` has the shapes rl_games' meters end up with: [value_size] for returns, a scalar
    for episode lengths (`scalar=True`).
    """

    def __init__(self, in_shape: int, max_size: int, scalar: bool = False) -> None:
        super().__init__()
        self.max_size = max_size
        self.scalar = scalar
        self.register_buffer("mean", torch.zeros(in_shape, dtype=torch.float32))
        self.register_buffer("size", torch.zeros((), dtype=torch.float32))

    def update_masked(self, values: torch.Tensor, mask: torch.Tensor) -> None:
        weights = mask.reshape(-1, 1).float()
        count = weights.sum()
        batch_mean = (values.float() * weights).sum(0) / count.clamp(min=1.0)
        size = count.clamp(max=float(self.max_size))
        old_size = torch.minimum(self.max_size - size, self.size)
        total = old_size + size
        new_mean = (self.mean * old_size + batch_mean * size) / total.clamp(min=1.0)
        finished = count > 0
        self.mean.copy_(torch.where(finished, new_mean, self.mean))
        self.size.copy_(torch.where(finished, total, self.size))

    def update(self, values: torch.Tensor) -> None:
        """The stock interface (all rows count), for code that calls it outside the rollout."""
        self.update_masked(values, torch.ones(values.shape[0], dtype=torch.bool, device=values.device))

    @property
    def current_size(self) -> int:
        return int(self.size.item())

    def clear(self) -> None:
        self.size.zero_()
        self.mean.zero_()

    def __len__(self) -> int:
        return self.current_size

    def get_mean(self) -> np.ndarray:
        mean = self.mean.cpu().numpy()
        return mean.squeeze(0) if self.scalar else mean


def update_running_stats(rms: nn.Module, x: torch.Tensor) -> None:
    """rl_games' `RunningMeanStd` training-mode update, written into its buffers in place.

    Same expressions in the same order as `RunningMeanStd._update_mean_var_count_from_moments`
    (float64 statistics, population variance of the batch).
    """
    batch_mean = x.mean(0)
    batch_var = x.var(0, unbiased=False)
    batch_count = x.size(0)
    mean, var, count = rms.running_mean, rms.running_var, rms.count
    delta = batch_mean - mean
    tot_count = count + batch_count
    new_mean = mean + delta * batch_count / tot_count
    m2 = var * count + batch_var * batch_count + delta**2 * count * batch_count / tot_count
    mean.copy_(new_mean)
    var.copy_(m2 / tot_count)
    count.copy_(tot_count)


def normalize(rms: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`RunningMeanStd` in evaluation mode: standardise with the running statistics, clip to +-5."""
    y = (x - rms.running_mean.float()) / torch.sqrt(rms.running_var.float() + rms.epsilon)
    return torch.clamp(y, min=-5.0, max=5.0)


def denormalize(rms: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`RunningMeanStd(x, denorm=True)`: the value head's output back in return units."""
    y = torch.clamp(x, min=-5.0, max=5.0)
    return torch.sqrt(rms.running_var.float() + rms.epsilon) * y + rms.running_mean.float()


def adaptive_lr(lr: torch.Tensor, kl: torch.Tensor, threshold: float, min_lr: float, max_lr: float) -> torch.Tensor:
    """rl_games' `AdaptiveScheduler.update` on the device: /1.5 above 2x the KL target, x1.5 below half."""
    lowered = torch.clamp(lr / 1.5, min=min_lr)
    raised = torch.clamp(lr * 1.5, max=max_lr)
    return torch.where(kl > 2.0 * threshold, lowered, torch.where(kl < 0.5 * threshold, raised, lr))
