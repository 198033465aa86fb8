/**
 * Where the time goes in a V8 CPU profile (`node --cpu-prof`): self time by function and by file,
 * and inclusive time of the functions under a path filter (default: fastagentic's own code).
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [--top=25] [--match=/src/,/transports/]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function shortUrl(url: string): string {
  const i = url.indexOf("/node_modules/");
  if (i >= 0) return url.slice(i + 1);
  return url.replace(/^file:\/\/.*?\/(src|transports|actors|bench)\//, "$1/").replace(/^node:/, "node:");
}

function keyOf(node: ProfileNode): string {
  const f = node.callFrame;
  const name = f.functionName || "(anonymous)";
  return f.url ? `${name} ${shortUrl(f.url)}:${f.lineNumber + 1}` : name;
}

function top(map: Map<string, number>, n: number, totalUs: number): string[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(
      ([k, us]) =>
        `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${k}`,
    );
}

function main(): void {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith("--"));
  if (!file)
    throw new Error("usage: profile-summary.ts <file.cpuprofile> [--top=25] [--match=/src/,/transports/]");
  const n = Number(args.find((a) => a.startsWith("--top="))?.slice(6) ?? 25);
  const match = (args.find((a) => a.startsWith("--match="))?.slice(8) ?? "/src/,/transports/,/actors/").split(
    ",",
  );
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const totalUs = profile.endTime - profile.startTime;
  const selfByFn = new Map<string, number>();
  const selfByFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const onStack = new Map<string, number>();
  const visit = (id: number): number => {
    const node = byId.get(id) as ProfileNode;
    const key = keyOf(node);
    const self = selfUs.get(id) ?? 0;
    selfByFn.set(key, (selfByFn.get(key) ?? 0) + self);
    const url = node.callFrame.url
      ? shortUrl(node.callFrame.url)
      : `(${node.callFrame.functionName || "native"})`;
    selfByFile.set(url, (selfByFile.get(url) ?? 0) + self);
    onStack.set(key, (onStack.get(key) ?? 0) + 1);
    let total = self;
    for (const child of node.children ?? []) total += visit(child);
    onStack.set(key, (onStack.get(key) as number) - 1);
    if (onStack.get(key) === 0 && match.some((m) => node.callFrame.url.includes(m))) {
      inclusive.set(key, (inclusive.get(key) ?? 0) + total);
    }
    return total;
  };
  const root = profile.nodes[0] as ProfileNode;
  visit(root.id);
  const idle = [...selfByFn.entries()].filter(([k]) => k.startsWith("(idle)")).reduce((a, [, v]) => a + v, 0);
  console.log(`${file}: ${(totalUs / 1000).toFixed(0)} ms profiled, ${(idle / 1000).toFixed(0)} ms idle`);
  console.log(`\nSelf time by function (top ${n}):`);
  for (const line of top(selfByFn, n, totalUs)) console.log(line);
  console.log(`\nSelf time by file (top ${n}):`);
  for (const line of top(selfByFile, n, totalUs)) console.log(line);
  console.log(`\nInclusive time of functions in ${match.join(" ")} (top ${n}):`);
  for (const line of top(inclusive, n, totalUs)) console.log(line);
}

main();
