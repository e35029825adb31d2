import { CheckpointError } from '../errors.js';

/**
 * Refuses a model output holding NaN or ±Inf. Such values come from damaged weights (or an
 * overflow they cause) and would be printed as `null` scores or sort arbitrarily; better one
 * clear error than silent nonsense. `source` names the checkpoint, `what` the output.
 */
export function assertFinite(data: Float32Array, source: string, what: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new CheckpointError(source, `the checkpoint produced NaN/Inf (${what}); its weights are damaged or hold non-finite values`);
    }
  }
}
