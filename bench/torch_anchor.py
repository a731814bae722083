"""What the PyTorch anchors of the benches share (bench/torch_train.py, bench/finetune/torch-step.py):
timing training steps after a warm-up, and naming the BLAS libraries PyTorch loaded (its speed depends
on them)."""
import os
import time


def time_steps(step, warmup, steps):
    """Seconds that `steps` calls of step() take, after `warmup` calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def blas_libraries():
    """The BLAS and LAPACK libraries this process loaded, links resolved."""
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if path.startswith("/") and ("blas" in path or "lapack" in path):
                found.add(os.path.realpath(path))
    return sorted(found)
