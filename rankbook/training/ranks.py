"""This process's place in a torch.distributed group (one process when none is initialized)."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @staticmethod
    def current() -> "Ranks":
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return Ranks(dist.get_rank(), dist.get_world_size())
        return Ranks()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _reduce(self, value: torch.Tensor, op) -> torch.Tensor:
        value = value.clone()
        torch.distributed.all_reduce(value, op=op)
        return value

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of ``value`` over ranks (itself on one process)."""
        return value if self.world == 1 else self._reduce(value, torch.distributed.ReduceOp.SUM) / self.world

    def min(self, value: torch.Tensor) -> torch.Tensor:
        return value if self.world == 1 else self._reduce(value, torch.distributed.ReduceOp.MIN)

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch (dim 0)."""
        if self.world == 1:
            return batch
        if batch.shape[0] % self.world:
            raise ValueError(f"global batch of {batch.shape[0]} does not split over {self.world} ranks")
        return batch.chunk(self.world)[self.rank]
