// GPU device settings a configuration runs under: the power limit and locked SM / memory clocks
// (issue #21, docs/adr/0024). They are sweep axes (`gpu.powerLimitWatts`) and part of the config
// hash; the agent applies them before the idle baseline, reads back what the driver made of them,
// and restores the previous values on every exit path (agent/gpu-control/).
import { z } from 'zod';
import { cel } from './spec-parts.ts';

/** No board NVIDIA makes takes a power limit above this; a typo (7000 for 700) fails at validation. */
export const MAX_POWER_LIMIT_WATTS = 2000;
/** Above any GPU clock: SM clocks reach ~2.1 GHz, HBM/GDDR memory clocks ~12 GHz (GDDR7 effective). */
export const MAX_CLOCK_MHZ = 20000;

const mhz = z.number().int().min(1).max(MAX_CLOCK_MHZ);

export const GpuSettingsSchema = z
  .strictObject({
    powerLimitWatts: z
      .number()
      .int()
      .min(1)
      .max(MAX_POWER_LIMIT_WATTS)
      .optional()
      .describe(
        "Board power limit (nvmlDeviceSetPowerManagementLimit) for the run; absent: the GPU's own. Checked against the device's constraints at run start.",
      ),
    smClockMHz: mhz
      .optional()
      .describe('Lock the SM clock at this value (nvmlDeviceSetGpuLockedClocks), or from it up to smClockMaxMHz.'),
    smClockMaxMHz: mhz.optional().describe('Upper end of a locked SM clock range; absent: locked at smClockMHz.'),
    memClockMHz: mhz.optional().describe('Lock the memory clock at this value (nvmlDeviceSetMemoryLockedClocks).'),
    memClockMaxMHz: mhz.optional().describe('Upper end of a locked memory clock range; absent: locked at memClockMHz.'),
    allowDeviceControl: z
      .boolean()
      .default(false)
      .describe(
        'Cluster mode: this experiment may change GPU settings. Also needs the chart value gpuControl.enabled (docs/security.md); llem run needs neither, only root.',
      ),
  })
  .superRefine((g, ctx) => {
    for (const [lo, hi] of [
      ['smClockMHz', 'smClockMaxMHz'],
      ['memClockMHz', 'memClockMaxMHz'],
    ] as const) {
      const a = g[lo];
      const b = g[hi];
      if (b !== undefined && a === undefined)
        ctx.addIssue({ code: 'custom', path: [hi], message: `needs ${lo} (the lower end of the range)` });
      if (a !== undefined && b !== undefined && b < a)
        ctx.addIssue({ code: 'custom', path: [hi], message: `must be >= ${lo} (${a})` });
    }
  })
  .meta(
    cel(
      {
        rule: '!has(self.smClockMaxMHz) || (has(self.smClockMHz) && self.smClockMaxMHz >= self.smClockMHz)',
        message: 'smClockMaxMHz needs smClockMHz and must be >= it',
        fieldPath: '.smClockMaxMHz',
      },
      {
        rule: '!has(self.memClockMaxMHz) || (has(self.memClockMHz) && self.memClockMaxMHz >= self.memClockMHz)',
        message: 'memClockMaxMHz needs memClockMHz and must be >= it',
        fieldPath: '.memClockMaxMHz',
      },
    ),
  );

export type GpuSettingsSpec = z.output<typeof GpuSettingsSchema>;

/** The device settings one configuration asks for (no permission flag): what the agent applies. */
export interface RequestedGpuSettings {
  powerLimitWatts?: number;
  smClockMHz?: { min: number; max: number };
  memClockMHz?: { min: number; max: number };
}

export function requestedGpuSettings(g: GpuSettingsSpec): RequestedGpuSettings {
  const out: RequestedGpuSettings = {};
  if (g.powerLimitWatts !== undefined) out.powerLimitWatts = g.powerLimitWatts;
  if (g.smClockMHz !== undefined) out.smClockMHz = { min: g.smClockMHz, max: g.smClockMaxMHz ?? g.smClockMHz };
  if (g.memClockMHz !== undefined) out.memClockMHz = { min: g.memClockMHz, max: g.memClockMaxMHz ?? g.memClockMHz };
  return out;
}

export function hasGpuSettings(g: RequestedGpuSettings): boolean {
  return g.powerLimitWatts !== undefined || g.smClockMHz !== undefined || g.memClockMHz !== undefined;
}

/** "cap 250 W, SM 1410 MHz": how a configuration's settings read in tables and charts. */
export function gpuSettingsLabel(g: RequestedGpuSettings): string {
  const parts: string[] = [];
  if (g.powerLimitWatts !== undefined) parts.push(`cap ${g.powerLimitWatts} W`);
  const range = (r: { min: number; max: number }): string => (r.min === r.max ? `${r.min}` : `${r.min}-${r.max}`);
  if (g.smClockMHz !== undefined) parts.push(`SM ${range(g.smClockMHz)} MHz`);
  if (g.memClockMHz !== undefined) parts.push(`mem ${range(g.memClockMHz)} MHz`);
  return parts.length === 0 ? 'default' : parts.join(', ');
}
