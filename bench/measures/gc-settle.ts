/** Memory after full garbage collections (the process must run with --expose-gc). */
export function settledMemory(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with node --expose-gc (global.gc is missing)");
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage();
}
