import type { EngineStage } from './types.js';
import { JobCancelledError } from './types.js';

/** One unit of work waiting for a model run (an image, a caption, an ITM pair). */
interface Item<I, O> {
  input: I;
  /** The oldest waiting job's submission time: lower runs first. */
  priority: number;
  queuedAt: number;
  /** False when nobody waits for the result any more; the item is then dropped unrun. */
  live: () => boolean;
  resolve: (output: O) => void;
  reject: (error: unknown) => void;
}

interface Stage<I, O> {
  name: EngineStage;
  queue: Item<I, O>[];
  run: (inputs: I[]) => Promise<O[]>;
  /**
   * Items with the same group key share the costly part of a run (ITM: one image's keys/values),
   * so a batch also takes every waiting item of the groups it already holds, past maxBatch.
   */
  groupKey?: (input: I) => string;
}

export interface LaneOptions {
  maxBatch: number;
  maxWaitMs: number;
  onBatch?: (stage: EngineStage, size: number, seconds: number) => void;
}

export type Submit<I, O> = (input: I, priority: number, live: () => boolean) => Promise<O>;

/**
 * The one place where model runs start. Every session uses all CPU cores (onnxruntime's
 * intra-op pool), so two runs at once would only fight over them: runs go one at a time, and
 * while one runs, work from all callers piles up per stage and goes as the next batch.
 *
 * A stage is ready when it holds `maxBatch` items or its oldest item has waited `maxWaitMs`.
 * Of the ready stages the one serving the oldest job goes first, so a job that already has its
 * image encoded finishes before newer jobs' images are encoded (bounded latency and memory).
 */
export class ModelLane {
  private readonly stages: Stage<unknown, unknown>[] = [];
  private busy = false;
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: LaneOptions) {}

  /** Registers a stage; `run` maps a batch of inputs to outputs in the same order. */
  stage<I, O>(name: EngineStage, run: (inputs: I[]) => Promise<O[]>, groupKey?: (input: I) => string): Submit<I, O> {
    const stage: Stage<I, O> = { name, queue: [], run, groupKey };
    this.stages.push(stage as Stage<unknown, unknown>);
    return (input, priority, live) => new Promise<O>((resolve, reject) => {
      stage.queue.push({ input, priority, queuedAt: performance.now(), live, resolve, reject });
      this.schedule();
    });
  }

  /** Items waiting, per stage. */
  get pending(): number {
    return this.stages.reduce((n, s) => n + s.queue.length, 0);
  }

  /** Resolves once no run is going and nothing waits. */
  idle(): Promise<void> {
    if (!this.busy && this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Pumps once the caller's synchronous submits are all in (a job queues its captions in one loop). */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const now = performance.now();
    let best: Stage<unknown, unknown> | undefined;
    let bestPriority = Infinity;
    let wakeAt = Infinity;
    for (const stage of this.stages) {
      dropDead(stage);
      if (stage.queue.length === 0) continue;
      const readyAt = stage.queue.length >= this.options.maxBatch ? now : stage.queue[0].queuedAt + this.options.maxWaitMs;
      if (readyAt > now) {
        wakeAt = Math.min(wakeAt, readyAt);
        continue;
      }
      let priority = Infinity;
      for (const item of stage.queue) priority = Math.min(priority, item.priority);
      if (priority < bestPriority) {
        best = stage;
        bestPriority = priority;
      }
    }
    if (!best) {
      if (wakeAt < Infinity) this.timer = setTimeout(() => this.pump(), Math.max(0, wakeAt - now));
      else this.notifyIdle();
      return;
    }
    const stage = best;
    const batch = takeBatch(stage, this.options.maxBatch);
    this.busy = true;
    const started = performance.now();
    let run: Promise<unknown[]>;
    try {
      run = stage.run(batch.map((item) => item.input));
    } catch (e) {
      run = Promise.reject(e);
    }
    run.then(
      (outputs) => {
        this.options.onBatch?.(stage.name, batch.length, (performance.now() - started) / 1000);
        batch.forEach((item, k) => item.resolve(outputs[k]));
      },
      (error) => batch.forEach((item) => item.reject(error)),
    ).finally(() => {
      this.busy = false;
      // setImmediate, not a microtask: the callers' continuations enqueue their next work
      // (ITM after vision) first, so the choice of the next batch sees it.
      setImmediate(() => this.pump());
    });
  }

  private notifyIdle(): void {
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

function takeBatch(stage: Stage<unknown, unknown>, maxBatch: number): Item<unknown, unknown>[] {
  const batch = stage.queue.splice(0, maxBatch);
  const key = stage.groupKey;
  if (!key || stage.queue.length === 0) return batch;
  const groups = new Set(batch.map((item) => key(item.input)));
  const rest: Item<unknown, unknown>[] = [];
  for (const item of stage.queue) (groups.has(key(item.input)) ? batch : rest).push(item);
  stage.queue = rest;
  return batch;
}

function dropDead(stage: Stage<unknown, unknown>): void {
  if (stage.queue.every((item) => item.live())) return;
  stage.queue = stage.queue.filter((item) => {
    if (item.live()) return true;
    item.reject(new JobCancelledError());
    return false;
  });
}
