"""Throughput while training: tokens per second, model FLOPs utilization (MFU) and peak memory.

MFU is the share of the accelerator's peak arithmetic rate that the model's own FLOPs use (PaLM,
appendix B): tokens/s x FLOPs per token / peak FLOP/s. Recomputation, padding and optimizer work
do not count, so it compares runs and codebases fairly. Peak rates are the vendors' dense figures
(no structured sparsity) for the precision the run computes in.
"""

import resource
import sys
import time

import torch
from lightning.pytorch.callbacks import Callback

# Dense peak FLOP/s by device name fragment (matched in order, so the more specific name first):
# (bf16/fp16 tensor cores, tf32 tensor cores).
PEAK_FLOPS = {
    "H200": (989e12, 494e12),
    "H100 PCIe": (756e12, 378e12),
    "H100 NVL": (835e12, 418e12),
    "H100": (989e12, 494e12),  # SXM
    "GH200": (989e12, 494e12),
    "B200": (2250e12, 1100e12),
    "A100": (312e12, 156e12),
    "A10G": (125e12, 62.5e12),
    "L40S": (362e12, 183e12),
    "L4": (121e12, 60e12),
    "RTX 4090": (165e12, 82.6e12),
    "RTX 3090": (71e12, 35.6e12),
    "V100": (125e12, 15.7e12),  # no bf16: fp16 tensor cores, and fp32 instead of tf32
    "T4": (65e12, 8.1e12),
}


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak FLOP/s for a Lightning precision string, or None where unknown
    (CPUs, unlisted GPUs): MFU is then not reported rather than made up."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    half = precision.startswith(("bf16", "16"))
    for fragment, (half_peak, tf32_peak) in PEAK_FLOPS.items():
        if fragment in name:
            return half_peak if half else tf32_peak
    return None


def peak_memory_gb(device: torch.device) -> float:
    """The most memory this process has held: allocated GPU memory, or the CPU's resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**30 if sys.platform == "darwin" else 2**20)


class SpeedMonitor(Callback):
    """Logs perf/tokens_per_s (all ranks together), perf/mfu and perf/peak_mem_gb to the logger at
    every logging step, timed by wall clock over the optimizer steps since the last one. Data
    loading counts; validation and the checkpoint saved after it do not.

    tokens_per_step is the global batch in tokens; flops_per_token comes from GPTConfig.
    """

    def __init__(self, tokens_per_step: int, flops_per_token: int):
        self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
        self.steps, self.seconds, self.started, self.last_step = 0, 0.0, None, None
        self.latest: dict[str, float] = {}  # the last logged values, for benchmarks and tests

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.started is None:
            self.started, self.last_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.last_step:  # a micro-batch inside an accumulation
            return
        self.steps += trainer.global_step - self.last_step
        self.last_step = trainer.global_step
        if trainer.global_step % trainer.log_every_n_steps:
            return
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)  # the clock must include the queued GPU work
        now = time.perf_counter()
        self.seconds += now - self.started
        self.started = now
        tokens_per_s = self.steps * self.tokens_per_step / self.seconds
        metrics = {"perf/tokens_per_s": tokens_per_s, "perf/peak_mem_gb": peak_memory_gb(module.device)}
        peak = peak_flops(module.device, trainer.precision)
        if peak:
            # tokens/s counts every rank, the peak is one device's
            metrics["perf/mfu"] = tokens_per_s * self.flops_per_token / (peak * trainer.world_size)
        self.latest = metrics
        self.steps, self.seconds = 0, 0.0
        if trainer.is_global_zero and trainer.logger:
            # Lightning logs a step's metrics under the step count before it (0 for the first step).
            trainer.logger.log_metrics(metrics, step=trainer.global_step - 1)

    def on_validation_start(self, trainer, module):
        if self.started is not None:  # close the interval so far; the pause is not counted
            if module.device.type == "cuda":
                torch.cuda.synchronize(module.device)
            self.seconds += time.perf_counter() - self.started
        self.started = None
