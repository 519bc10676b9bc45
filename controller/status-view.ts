// Status as the controller reads it back: through the zod status schema (api/status.ts), never as an
// untyped record. A status the schema refuses (written by a newer or broken writer) is logged and
// read as empty: the reconcile then rebuilds it from the run table and the stream.
import { z } from 'zod';
import { EnergyExperimentStatusSchema, type EnergyExperimentStatus } from '../api/status.ts';
import type { Logger } from '../lib/log.ts';

export function experimentStatus(raw: unknown, log: Logger): EnergyExperimentStatus {
  const parsed = EnergyExperimentStatusSchema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  log.warn({ problem: z.prettifyError(parsed.error) }, 'status does not match the status schema; rebuilding it');
  return EnergyExperimentStatusSchema.parse({});
}

/**
 * Finished with the artifact written: the experiment's feed has been (or is being) released and
 * nothing about it changes any more; later reconciles only honour ttlSecondsAfterFinished.
 */
export function isReleased(s: EnergyExperimentStatus): boolean {
  return (
    (s.phase === 'Succeeded' || s.phase === 'Failed') && s.artifact !== undefined && s.completionTime !== undefined
  );
}
