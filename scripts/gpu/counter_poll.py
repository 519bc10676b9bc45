#!/usr/bin/env python3
"""Independent fast-poll energy counter log (docs/validation/tick-aligned.md).

Polls GPU 0's NVML total-energy counter with pynvml every --period-ms (default 2 ms; one call takes
a few ms on an H100/H200, so in practice it polls back to back) and writes one line per poll:
"<wall-clock ms, mid-call> <energy mJ>". Runs until SIGTERM/SIGINT. Shares no code with the agent.
"""
import argparse
import signal
import sys
import time

import pynvml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--period-ms", type=float, default=2.0)
    args = parser.parse_args()
    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    period = args.period_ms / 1000.0
    next_t = time.monotonic()
    lines = []
    with open(args.out, "w", encoding="ascii") as out:
        while not stop:
            before = time.time()
            energy = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            after = time.time()
            lines.append(f"{(before + after) * 500.0:.3f} {energy}\n")
            if len(lines) >= 500:
                out.writelines(lines)
                out.flush()
                lines = []
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()
        out.writelines(lines)
    pynvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
