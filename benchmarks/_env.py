"""Shared by the benchmarks: the machine, versions and threads they print, and a median timer."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def environment() -> dict:
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cpu",
    }


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired_ratio(fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int) -> dict:
    """Median of time(a) / time(b) over `repeats` back-to-back pairs (after one warm-up each): on a noisy machine
    both sides of each pair share its state, so the ratio is steadier than a ratio of separate medians."""
    fn_a(), fn_b()
    ratios, ta, tb = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        fn_a()
        a = time.perf_counter() - t
        t = time.perf_counter()
        fn_b()
        b = time.perf_counter() - t
        ratios.append(a / b), ta.append(a), tb.append(b)
    return {
        "median_ratio": round(statistics.median(ratios), 4),
        "min_ratio": round(min(ratios), 4),
        "max_ratio": round(max(ratios), 4),
        "median_a_s": round(statistics.median(ta), 5),
        "median_b_s": round(statistics.median(tb), 5),
        "pairs": repeats,
    }
