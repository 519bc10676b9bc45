#!/usr/bin/env python3
"""Reads GPU 0's power-limit constraints and supported clocks with pynvml (independently of llem)
and writes the device's power-caps manifest: examples/power-caps.yaml with the caps and locked SM
clocks replaced by values this GPU accepts (docs/validation/power-caps.md).
Usage: power_constraints.py EXAMPLE_YAML OUT_YAML OUT_JSON"""
import json
import re
import sys

import pynvml

pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
lo, hi = pynvml.nvmlDeviceGetPowerManagementLimitConstraints(h)
default = pynvml.nvmlDeviceGetPowerManagementDefaultLimit(h)
current = pynvml.nvmlDeviceGetPowerManagementLimit(h)
mem = pynvml.nvmlDeviceGetSupportedMemoryClocks(h)
sm = sorted(pynvml.nvmlDeviceGetSupportedGraphicsClocks(h, max(mem)))
lo_w, hi_w = lo // 1000, hi // 1000
caps = [hi_w] + [w for w in (500, 350) if lo_w < w < hi_w] + [max(lo_w, 250)]
caps = sorted(set(caps), reverse=True)
top = sm[-1]
# A clearly lower locked clock: the supported clock nearest 60% of the maximum.
low = min(sm, key=lambda c: abs(c - 0.6 * top))
info = {
    "name": pynvml.nvmlDeviceGetName(h),
    "minPowerLimitW": lo / 1000, "maxPowerLimitW": hi / 1000,
    "defaultPowerLimitW": default / 1000, "currentPowerLimitW": current / 1000,
    "supportedMemClocksMHz": sorted(mem), "supportedSmClocksMHz": [sm[0], sm[-1], len(sm)],
    "caps": caps, "smClocks": [top, low],
}
text = open(sys.argv[1], encoding="utf-8").read()
text = re.sub(r"gpu\.powerLimitWatts: \[[^\]]*\]", "gpu.powerLimitWatts: [" + ", ".join(map(str, caps)) + "]", text)
text = text.replace("gpu.smClockMHz: 1980", f"gpu.smClockMHz: {top}").replace("gpu.smClockMHz: 1200", f"gpu.smClockMHz: {low}")
open(sys.argv[2], "w", encoding="utf-8").write(text)
json.dump(info, open(sys.argv[3], "w", encoding="utf-8"), indent=2)
print(json.dumps(info))
