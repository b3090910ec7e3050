"""Cost of the EMA callback's update next to an optimizer step, on the default MLP.

Run: ``python bench/bench_ema.py [--device cuda] [--model big]`` (single thread on the CPU).
Times 1000 EMA updates (``torch._foreach_lerp_`` over the parameters, what ``EMA`` does after an
optimizer step), 1000 Adam steps (gradients set once, not recomputed) and 1000 full training
steps (forward, backward, Adam on a 64-sample batch), and prints the EMA update as a share of each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from declarative_train.callbacks.averaging import AveragedParameters  # noqa: E402
from declarative_train.models import MLP  # noqa: E402

N = 1000


def _time(fn: Callable[[], None], device: torch.device) -> float:
    for _ in range(20):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(N):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / N


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=["default", "big"], default="default")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    sizes = ([128, 64], 64, 10) if args.model == "default" else ([1024, 1024], 512, 100)
    model = MLP(sizes[1], sizes[0], sizes[2]).to(device)
    params = [p for p in model.parameters()]
    count = sum(p.numel() for p in params)
    slots = AveragedParameters(model)
    live, averaged = slots.detached(), slots.clones()
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    adam = torch.optim.Adam(params, lr=1e-4)
    x, y = torch.randn(64, sizes[1], device=device), torch.randint(0, sizes[2], (64,), device=device)

    def ema() -> None:
        with torch.no_grad():
            torch._foreach_lerp_(averaged, live, 0.001)

    def train_step() -> None:
        adam.zero_grad(set_to_none=False)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        adam.step()

    t_ema, t_adam = _time(ema, device), _time(adam.step, device)
    t_train = _time(train_step, device)
    print(f"model: MLP {sizes}, {count:,} parameters in {len(params)} tensors, device {device}")
    print(f"EMA update      {t_ema * 1e6:9.1f} us")
    print(f"Adam step       {t_adam * 1e6:9.1f} us   EMA/Adam step  = {t_ema / t_adam:6.1%}")
    print(f"training step   {t_train * 1e6:9.1f} us   EMA/train step = {t_ema / t_train:6.1%}")


if __name__ == "__main__":
    main()
