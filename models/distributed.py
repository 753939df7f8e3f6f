"""Data-parallel training under ``torchrun``: the process group, the job hand-off and sharding.

Why the leader/follower split: everything except the optimizer steps (loading the model, pruning,
balancing, evaluation, every file) happens once, on rank 0, exactly as in a single-process run.
Whenever rank 0 trains, it broadcasts the whole training job (start graph, masks, options, the
resume checkpoint) to the other ranks, which train the same job under DistributedDataParallel and
then wait for the next one. So masks and balancing are computed once, files have one writer, and
a run that dies on any rank resumes from rank 0's last atomic checkpoint.

Sharding keeps the single-process semantics: every rank draws the same seeded global batch (order
and augmentation, so generator states stay equal on all ranks) and trains its contiguous slice;
losses are weighted by slice size so DDP's gradient average is the gradient of the global batch.
Nothing here runs in a single-process run (``world().size == 1``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# Followers wait in a broadcast while rank 0 evaluates and balances, which can take long on big
# models; a dead process is noticed by torchrun itself, not by this timeout.
WAIT = timedelta(hours=6)


@dataclass(frozen=True)
class World:
    """This process's place in the job, as torchrun's environment describes it."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_leader(self) -> bool:
        return self.rank == 0


def world() -> World:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); one process when absent."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


class Group:
    """An initialized process group plus what rank 0 last sent (the dataset is sent once)."""

    def __init__(self, w: World) -> None:
        self.world = w
        self.busy = False  # a job is in flight: collectives other than the job's are unsafe
        self._sent_data: Any = None

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def size(self) -> int:
        return self.world.size

    def device(self, kind: str) -> torch.device:
        """``cuda:LOCAL_RANK`` for CUDA jobs (one GPU per process), else the CPU."""
        return torch.device("cuda", self.world.local_rank) if kind == "cuda" else torch.device(kind)

    def send(self, job: Mapping[str, Any] | None) -> None:
        """Rank 0: hand ``job`` (None: stop) to every rank; the dataset only when it changed."""
        payload = None if job is None else dict(job)
        if payload is not None and payload.get("data") is self._sent_data:
            payload["data"] = None
        elif payload is not None:
            self._sent_data = payload["data"]
        objs: list[Any] = [payload]
        dist.broadcast_object_list(objs, src=0, device=torch.device("cpu"))

    def receive(self) -> dict[str, Any] | None:
        """Other ranks: the next job from rank 0 (None: stop), with the last dataset filled in."""
        objs: list[Any] = [None]
        dist.broadcast_object_list(objs, src=0, device=torch.device("cpu"))
        job = objs[0]
        if job is not None:
            if job["data"] is None:
                job["data"] = self._sent_data
            self._sent_data = job["data"]
        return job

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks (epoch loss, correct, seen)."""
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def check_same(self, what: str, digest: str) -> None:
        """Raise on every rank unless every rank holds the same ``digest`` of ``what``."""
        digests: list[Any] = [None] * self.size
        dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise RuntimeError(f"ranks diverged: {what} differ between ranks ({digests})")
        if self.world.is_leader:
            log.info("%s identical on %d ranks (sha256 %s)", what, self.size, digest[:16])


_GROUP: Group | None = None


def current() -> Group | None:
    """The active process group, or None in a single-process run."""
    return _GROUP


def backend() -> str:
    """NCCL for CUDA tensors when this build has it, gloo for CPU tensors (and objects)."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


@contextmanager
def session() -> Iterator[Group | None]:
    """Join torchrun's process group for the duration of a command; None when not launched so.

    On exit, even by an error, rank 0 tells the other ranks to stop (unless it fails mid-job:
    then the others are inside collectives and torchrun ends them), and the group is destroyed.
    """
    global _GROUP
    w = world()
    if w.size == 1:
        yield None
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(w.local_rank)
    dist.init_process_group(backend=backend(), timeout=WAIT)
    _GROUP = Group(w)
    try:
        try:
            yield _GROUP
        finally:
            if not _GROUP.busy:
                if w.is_leader:
                    _GROUP.send(None)
                # No rank destroys the group while a peer still reads from it: gloo aborts the
                # reader's process ("terminate called without an active exception") otherwise.
                dist.barrier()
    finally:
        _GROUP = None
        dist.destroy_process_group()


def shard(n: int, size: int, rank: int) -> slice:
    """This rank's contiguous slice of a global batch of ``n`` samples (sizes differ by <= 1)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def tensors_digest(tensors: Iterator[torch.Tensor]) -> str:
    """sha256 of tensors' bytes in order (masks, weights) to compare ranks cheaply."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
