// Prints, for every GPU NVML sees: the processes listed on it (compute, graphics, MPS clients)
// with their /proc names and parents, its throttle reasons by name, SM clock / max, temperature,
// and MIG mode, through the same NVML bindings the agent uses (agent/telemetry/nvml-api.ts).
// Run on the GPU machine while a backend serves, to confirm those readings there:
//   node .gpu-attr/dist/nvml-probe.mjs > probe.json
import { readProcessTable } from '../../agent/telemetry/processes.ts';
import { throttleReasonNames } from '../../agent/telemetry/conditions.ts';
import { loadNvmlApi, NVML_CLOCK_SM } from '../../agent/telemetry/nvml-api.ts';

const api = loadNvmlApi(process.env['LLEM_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1');
if (api.init() !== 0) throw new Error('NVML init failed');
const table = readProcessTable();
const gpus = [];
for (let i = 0; i < (api.deviceCount().value ?? 0); i++) {
  const h = api.handleByIndex(i).value;
  const reasons = api.throttleReasons(h);
  const processes = (['compute', 'graphics', 'mps'] as const).map((kind) => {
    const r = api.processes(h, kind);
    return {
      kind,
      rc: r.rc,
      list: (r.value ?? []).map((p) => ({ ...p, name: table.nameOf(p.pid), parent: table.parentOf(p.pid) ?? null })),
    };
  });
  gpus.push({
    index: i,
    uuid: api.uuid(h).value,
    name: api.name(h).value,
    throttleReasons: reasons.value ?? null,
    throttleReasonNames: reasons.value === undefined ? null : throttleReasonNames(reasons.value),
    smClockMhz: api.clockMhz(h, NVML_CLOCK_SM).value ?? null,
    smClockMaxMhz: api.maxClockMhz(h, NVML_CLOCK_SM).value ?? null,
    temperatureC: api.temperatureC(h).value ?? null,
    migEnabled: api.migEnabled(h),
    processes,
  });
}
api.shutdown();
process.stdout.write(`${JSON.stringify({ tMs: Date.now(), probePid: process.pid, gpus }, null, 1)}\n`);
