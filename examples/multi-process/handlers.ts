/**
 * The handlers module the worker processes load: `fastagentic worker --handlers ./handlers.ts`.
 * Its default export maps task types to handler functions (an @Actor class works too).
 */
import { hostname } from "node:os";
import type { TaskContext } from "fastagentic";

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

export default {
  async resize_image(data: { image: string; width: number }, ctx: TaskContext) {
    await sleep(20, ctx.signal); // stands for real work
    return { image: data.image, width: data.width, by: `${process.pid}@${hostname()}`, worker: ctx.workerId };
  },
};
