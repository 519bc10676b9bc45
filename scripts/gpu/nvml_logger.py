#!/usr/bin/env python3
"""Independent energy log for cross-checking the agent (docs/validation/h200.md).

Polls every GPU's NVML total-energy counter (mJ) and power (mW) with pynvml at a fixed rate and
writes one JSON line per poll: {"t_ms": wall-clock ms, "gpu": index, "energy_mj": int,
"power_mw": int, "sm_mhz": int, "temp_c": int, "load1": the host's 1-minute load average,
"cpu_busy_pct" and "cpu_steal_pct": all CPUs' busy and hypervisor-steal share since the last poll,
"probe_us": how long a fixed pure-Python loop took on this host at that moment (host CPU speed)}.
Runs until SIGTERM/SIGINT; flushes every line so a kill loses nothing.
Nothing here shares code with the agent: it is the independent side of the comparison.
"""
import argparse
import json
import os
import signal
import sys
import time

import pynvml


def cpu_times() -> tuple[int, int, int]:
    """(total, idle incl. iowait, steal) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total, fields[3] + fields[4], fields[7] if len(fields) > 7 else 0


def cpu_probe_us() -> float:
    """Microseconds for a fixed pure-Python loop: rises when the host's CPUs run slower."""
    started = time.perf_counter()
    x = 0
    for i in range(20000):
        x += i * i
    return round((time.perf_counter() - started) * 1e6, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="JSONL file to write")
    parser.add_argument("--hz", type=float, default=10.0, help="polls per second (default 10)")
    args = parser.parse_args()

    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    pynvml.nvmlInit()
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    period = 1.0 / args.hz
    next_t = time.monotonic()
    last_cpu = cpu_times()
    with open(args.out, "w", encoding="utf-8") as out:
        while not stop:
            cpu = cpu_times()
            dt = max(1, cpu[0] - last_cpu[0])
            busy = round(100.0 * (dt - (cpu[1] - last_cpu[1])) / dt, 1)
            steal = round(100.0 * (cpu[2] - last_cpu[2]) / dt, 2)
            last_cpu = cpu
            probe = cpu_probe_us()
            for index, handle in enumerate(handles):
                energy = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                t_ms = time.time() * 1000.0
                power = pynvml.nvmlDeviceGetPowerUsage(handle)
                sm_mhz = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
                temp_c = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
                row = {"t_ms": t_ms, "gpu": index, "energy_mj": energy, "power_mw": power, "sm_mhz": sm_mhz, "temp_c": temp_c, "load1": os.getloadavg()[0],
                       "cpu_busy_pct": busy, "cpu_steal_pct": steal, "probe_us": probe}
                out.write(json.dumps(row) + "\n")
            out.flush()
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
    pynvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
