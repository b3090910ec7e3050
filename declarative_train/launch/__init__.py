"""Launching a job's processes: in this one, or as workers.

``dispatch`` (choose by the accelerator config), ``elastic`` (``strategy=ddp``: workers started by
torch.distributed.elastic), ``spawn`` (``ddp_spawn``), ``external`` (ranks started by torchrun or
SLURM), ``nodes`` (several ``dtrain`` node agents agree on one run folder), ``worker`` (the worker
entry point), ``resolved`` (the resolved config workers read), ``logs`` (rank-tagged log lines).
"""
