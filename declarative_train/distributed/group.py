"""Leaving the default process group without deadlocking on DDP's reducer."""

from __future__ import annotations

import gc

import torch.distributed as dist


def leave_process_group() -> None:
    """Destroy the default process group if this process has one.

    A DDP reducer that outlives the group holds the last reference to it. Freeing that reducer
    destroys the gloo group with the GIL held and joins the group's worker threads, and a worker
    thread that is releasing a finished collective's Python-owned tensors waits for the GIL:
    a deadlock (seen under torch 2.13 at the end of a job, mostly on busy machines). Collecting
    garbage first frees reducers that sit in reference cycles while the group is still
    registered, so the group's last reference is the Python one, which is released without the GIL.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    dist.destroy_process_group()
