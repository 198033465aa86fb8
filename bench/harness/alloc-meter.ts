/**
 * Bytes allocated on V8's heap by this process, counted without sampling: every garbage collection
 * reports the heap used before and after it (`v8.GCProfiler`), so what was allocated between two
 * readings is the heap freed by the collections in between plus the change of the heap used.
 *   allocated = Σ (usedBefore − usedAfter) over the GCs + (used now − used at the last reading)
 * It counts JavaScript objects, strings and the `Buffer`/`Uint8Array` objects themselves; the bytes
 * a Buffer holds live outside the heap (a pool, or malloc) and are not counted. The profiler is
 * stopped and started again at each reading, so the count is cumulative from the first one.
 */
import { GCProfiler, getHeapStatistics } from "node:v8";

export class AllocMeter {
  private profiler = new GCProfiler();
  private lastUsed = getHeapStatistics().used_heap_size;
  private total = 0;

  constructor() {
    this.profiler.start();
  }

  /** Bytes allocated since this meter was made. */
  read(): number {
    const result = this.profiler.stop();
    for (const gc of result?.statistics ?? []) {
      this.total += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
    }
    const used = getHeapStatistics().used_heap_size;
    this.total += used - this.lastUsed;
    this.lastUsed = used;
    this.profiler = new GCProfiler();
    this.profiler.start();
    return this.total;
  }

  stop(): void {
    this.profiler.stop();
  }
}
