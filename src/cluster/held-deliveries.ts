/**
 * Which deliveries each worker holds, as far as a coordinator can tell: the handles a worker lists
 * in its heartbeats (all it held then), plus those its "started" events carry since, minus those
 * whose task it reported an outcome for. Only where the transport can release deliveries from
 * elsewhere (NATS); bounded per worker, and forgotten with the worker.
 */
import { MAX_CONTROL_LIST, type TaskEvent } from "../codec.js";

export class HeldDeliveries {
  /** Worker id → handle → task id (undefined when the handle came from a heartbeat). */
  private readonly byWorker = new Map<string, Map<string, string | undefined>>();
  /** Worker id → task id → handle, to drop a handle when its task's outcome arrives. */
  private readonly byTask = new Map<string, Map<string, string>>();

  /** A heartbeat lists everything the worker held when it sent it. */
  heartbeat(workerId: string, held: readonly string[] | undefined): void {
    if (held === undefined) return;
    const handles = new Map<string, string | undefined>();
    const tasks = this.byTask.get(workerId);
    const taskOf = new Map<string, string>();
    if (tasks) for (const [task, handle] of tasks) taskOf.set(handle, task);
    for (const h of held.slice(0, MAX_CONTROL_LIST)) handles.set(h, taskOf.get(h));
    this.byWorker.set(workerId, handles);
    if (tasks) for (const [task, handle] of tasks) if (!handles.has(handle)) tasks.delete(task);
  }

  /** A task event: "started" adds the delivery it carries, an outcome or a retry removes it. */
  taskEvent(event: TaskEvent): void {
    const workerId = event.workerId;
    if (workerId === undefined) return;
    if (event.kind === "started") {
      if (event.release === undefined) return;
      let handles = this.byWorker.get(workerId);
      if (!handles) {
        handles = new Map();
        this.byWorker.set(workerId, handles);
      }
      if (handles.size >= MAX_CONTROL_LIST) return;
      handles.set(event.release, event.taskId);
      let tasks = this.byTask.get(workerId);
      if (!tasks) {
        tasks = new Map();
        this.byTask.set(workerId, tasks);
      }
      tasks.set(event.taskId, event.release);
      return;
    }
    const tasks = this.byTask.get(workerId);
    const handle = tasks?.get(event.taskId);
    if (handle === undefined) return;
    tasks?.delete(event.taskId);
    this.byWorker.get(workerId)?.delete(handle);
  }

  /** What the worker held, as known now; forgets the worker. */
  take(workerId: string): string[] {
    const handles = [...(this.byWorker.get(workerId)?.keys() ?? [])];
    this.forget(workerId);
    return handles;
  }

  forget(workerId: string): void {
    this.byWorker.delete(workerId);
    this.byTask.delete(workerId);
  }

  /** Workers followed now (for tests and bounds). */
  get size(): number {
    return this.byWorker.size;
  }
}
