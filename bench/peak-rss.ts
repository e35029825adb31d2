import { readFileSync } from 'node:fs';

/**
 * This process's peak resident memory, MiB. On Linux it is VmHWM, which starts afresh when a
 * program is exec'd. getrusage's maxRSS does not: a child process inherits its parent's peak at
 * the fork, so a fresh process started by a benchmark that holds a 2.7 GB model reported 2.6 GB
 * for a 0.8 GB int8 load.
 */
export function peakRssMb(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) / 1024;
  } catch {
    // no /proc: not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}
