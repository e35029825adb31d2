/**
 * Download progress: the event type `resolveCheckpoint` reports, and a one-line terminal
 * progress bar (bytes, rate, ETA) that draws only when the stream is a TTY, so logs, pipes
 * and CI output never fill up with carriage returns.
 */

export interface DownloadProgress {
  /** Repo id, `owner/name`. */
  repo: string;
  /** File name inside the repo, e.g. `model.safetensors`. */
  file: string;
  /**
   * 'start' once before the first byte, 'data' as bytes arrive, 'done' once the file is
   * verified and in place, 'failed' when this attempt stopped (an error follows, or a retry
   * that starts again with 'start').
   */
  phase: 'start' | 'data' | 'done' | 'failed';
  /** Bytes of the file on disk so far, counting bytes kept from an earlier interrupted download. */
  loaded: number;
  /** Size of the file, when the server said. */
  total?: number;
  /** Bytes that were already on disk (a resumed `.incomplete` file) when this download started. */
  resumedFrom: number;
}

export type ProgressListener = (p: DownloadProgress) => void;

/** The subset of a tty.WriteStream the bar needs (lets tests pass a fake terminal). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** Decimal units, like huggingface_hub's tqdm bars: 1 MB = 1,000,000 B. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(n >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

/** `m:ss`, or `h:mm:ss` from one hour up; `?` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

interface BarState {
  startedAt: number;
  resumedFrom: number;
  lastDraw: number;
}

/**
 * A progress listener that draws one line per file on `stream` (stderr by default), or
 * `undefined` when the stream is not a TTY: then nothing is drawn at all.
 *
 *   model.safetensors  45% [█████████░░░░░░░░░░░] 812.3 MB/1.8 GB  24.1 MB/s  ETA 0:41
 *
 * The rate counts only bytes fetched in this run (resumed bytes are excluded), and the
 * line is redrawn at most every `intervalMs`.
 */
export function createProgressBar(
  stream: ProgressStream = process.stderr,
  options: { intervalMs?: number; now?: () => number } = {},
): ProgressListener | undefined {
  if (!stream.isTTY) return undefined;
  const intervalMs = options.intervalMs ?? 100;
  const now = options.now ?? (() => performance.now());
  const states = new Map<string, BarState>();

  const draw = (p: DownloadProgress, st: BarState, final: boolean): void => {
    const elapsed = (now() - st.startedAt) / 1000;
    const fetched = p.loaded - st.resumedFrom;
    const rate = elapsed > 0 ? fetched / elapsed : 0;
    const width = Math.max(40, stream.columns || 80); // 0 or undefined: size unknown
    const name = p.file.length > 32 ? `…${p.file.slice(-31)}` : p.file;
    let line: string;
    if (final) {
      line = `${name}  ${formatBytes(p.loaded)}  ${formatBytes(rate)}/s  in ${formatDuration(elapsed)}`;
    } else {
      const sizes = `${formatBytes(p.loaded)}/${p.total === undefined ? '?' : formatBytes(p.total)}`;
      const eta = p.total !== undefined && rate > 0 ? formatDuration((p.total - p.loaded) / rate) : '?';
      const tail = `${sizes}  ${formatBytes(rate)}/s  ETA ${eta}`;
      if (p.total !== undefined && p.total > 0) {
        const frac = Math.min(1, p.loaded / p.total);
        const pct = `${String(Math.floor(frac * 100)).padStart(3)}%`;
        const barWidth = Math.max(5, Math.min(30, width - name.length - pct.length - tail.length - 8));
        const filled = Math.round(frac * barWidth);
        line = `${name} ${pct} [${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}] ${tail}`;
      } else {
        line = `${name}  ${tail}`;
      }
    }
    if (line.length > width - 1) line = line.slice(0, width - 1);
    // \r + "erase to end of line" so a shorter line never leaves old characters behind.
    stream.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
  };

  return (p) => {
    const key = `${p.repo}/${p.file}`;
    let st = states.get(key);
    if (p.phase === 'start' || st === undefined) {
      st = { startedAt: now(), resumedFrom: p.resumedFrom, lastDraw: -Infinity };
      states.set(key, st);
    }
    if (p.phase === 'done') {
      draw(p, st, true);
      states.delete(key);
      return;
    }
    if (p.phase === 'failed') {
      // Keep what was drawn, end the line so the error message starts on its own line.
      stream.write('\n');
      states.delete(key);
      return;
    }
    const t = now();
    if (p.phase === 'start' || t - st.lastDraw >= intervalMs) {
      st.lastDraw = t;
      draw(p, st, false);
    }
  };
}
