"""What a benchmark ran on: the CPU's name, the instruction-set features that decide int8 and bfloat16 speed, and
the CPU class that names its result files, so that a run on one class never overwrites another's figures."""
from __future__ import annotations

import os
import platform
from pathlib import Path

# /proc/cpuinfo flag names. VNNI (avx512_vnni, avx_vnni) and AMX run int8 dot products in one instruction; without
# them an int8 convolution needs a multiply, a widening add and a shuffle per step. AMX and avx512_bf16 run
# bfloat16 natively. asimddp is the ARM dot-product extension, ARM's VNNI.
FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "avx512_bf16", "asimddp")


def cpu_info() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_name(lines: list[str]) -> str:
    """The model name (platform.processor() gives only the architecture on Linux)."""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(("model name", "Model"))),
                platform.processor() or platform.machine())


def cpu_flags(lines: list[str]) -> set[str]:
    """x86 lists them as 'flags', ARM as 'Features'."""
    return {flag for line in lines if line.startswith(("flags", "Features")) for flag in line.split(":", 1)[1].split()}


def cpu_class(flags: set[str]) -> str:
    """The fastest int8 path the CPU has: amx, vnni, avx512, avx2, arm-dotprod, or the bare architecture."""
    if "amx_tile" in flags:
        return "amx"
    if {"avx512_vnni", "avx_vnni"} & flags:
        return "vnni"
    for feature, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("asimddp", "arm-dotprod")):
        if feature in flags:
            return name
    return platform.machine().lower()


def describe() -> dict:
    """Name, class, the FEATURES it has and lacks, and the core count: put into every result file."""
    lines = cpu_info()
    flags = cpu_flags(lines)
    return {"cpu": cpu_name(lines), "class": cpu_class(flags), "cores": os.cpu_count(),
            "features": {feature: feature in flags for feature in FEATURES}}


def features_text(machine: dict) -> str:
    """E.g. 'avx2; no avx512f, avx512_vnni, ...' for a results table's heading."""
    has = [name for name, present in machine["features"].items() if present]
    lacks = [name for name, present in machine["features"].items() if not present]
    return "; ".join(filter(None, [", ".join(has), "no " + ", ".join(lacks) if lacks else ""]))
