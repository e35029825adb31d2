import { UsageError } from '../errors.js';
import { DeadlineExceededError, EngineClosedError, EngineOverloadedError, JobCancelledError, type JobOptions } from './types.js';

/** One caller's request while it is accepted and unfinished. */
export class Job {
  /** Submission time (performance.now()); older jobs' work runs first. */
  readonly submittedAt = performance.now();
  private done = false;

  /** False once the job has settled (finished, failed, expired or cancelled): its pending work is dropped. */
  get live(): boolean {
    return !this.done;
  }

  /** @internal */
  settle(): boolean {
    if (this.done) return false;
    this.done = true;
    return true;
  }
}

/**
 * Admission and lifetime of jobs: the bounded queue, deadlines and cancellation. A job settles
 * at the first of: its work finishing, its deadline, its signal; whatever of its work has not
 * started by then is dropped by the stages (they check `job.live`).
 */
export class JobTracker {
  private active = 0;
  private closed = false;
  /** Every job's work until it has really stopped (a cancelled job's running batch included). */
  private readonly working = new Set<Promise<unknown>>();

  constructor(private readonly maxQueue: number, private readonly defaultDeadlineMs: number) {}

  get depth(): number {
    return this.active;
  }

  run<T>(options: JobOptions | undefined, work: (job: Job) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new EngineClosedError());
    const deadlineMs = options?.deadlineMs ?? this.defaultDeadlineMs;
    if (typeof deadlineMs !== 'number' || !(deadlineMs > 0) || !Number.isFinite(deadlineMs)) {
      return Promise.reject(new UsageError(`deadlineMs must be a positive number of milliseconds, got ${String(deadlineMs)}`));
    }
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(new JobCancelledError());
    if (this.active >= this.maxQueue) return Promise.reject(new EngineOverloadedError(this.maxQueue));

    const job = new Job();
    this.active++;
    return new Promise<T>((resolve, reject) => {
      const finish = (settleWith: () => void): void => {
        if (!job.settle()) return;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.active--;
        settleWith();
      };
      const onAbort = (): void => finish(() => reject(new JobCancelledError()));
      const timer = setTimeout(() => finish(() => reject(new DeadlineExceededError(deadlineMs))), deadlineMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      let running: Promise<T>;
      try {
        running = work(job);
      } catch (e) {
        running = Promise.reject(e);
      }
      const tracked = running.then(
        (value) => finish(() => resolve(value)),
        (error) => finish(() => reject(error)),
      );
      this.working.add(tracked);
      void tracked.finally(() => this.working.delete(tracked));
    });
  }

  /** Refuses new jobs from now on. */
  close(): void {
    this.closed = true;
  }

  /** Resolves when every accepted job's work has stopped. */
  async drain(): Promise<void> {
    while (this.working.size > 0) await Promise.allSettled([...this.working]);
  }
}
