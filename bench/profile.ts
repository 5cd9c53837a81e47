// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by source file and by function,
// mapped through the bundle's source map so time in undici, commander or the engine is named.
import { existsSync, readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Self time by original source file (or V8 category like "(idle)", "(garbage collector)"). */
  byFile: { name: string; ms: number; share: number }[];
  /** Self time by function. */
  byFunction: { name: string; ms: number; share: number }[];
}

export function summariseProfile(path: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const maps = new Map<string, SourceMap | null>();
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const byFile = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id)!.callFrame;
    let file = frame.url ? frame.url.replace(/^file:\/\/.*\/(dist|node_modules)\//, '$1/') : frame.functionName || '(anonymous)';
    if (frame.url.startsWith('file://')) {
      if (!maps.has(frame.url)) maps.set(frame.url, loadSourceMap(new URL(frame.url).pathname));
      const source = maps.get(frame.url)?.lookup(frame.lineNumber, frame.columnNumber);
      if (source) file = source.replace(/^(\.\.\/)+/, '');
    }
    const fn = `${frame.functionName || '(anonymous)'} ${file.startsWith('(') ? '' : `[${file}]`}`.trim();
    byFile.set(file, (byFile.get(file) ?? 0) + us / 1000);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us / 1000);
  }
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const rank = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), share: ms / totalMs }));
  return { totalMs: Math.round(totalMs), byFile: rank(byFile), byFunction: rank(byFunction) };
}

interface SourceMap {
  lookup(line: number, column: number): string | undefined;
}

/** Just enough of Source Map v3 to name the original file of a generated (line, column), 0-based. */
function loadSourceMap(generatedPath: string): SourceMap | null {
  const mapPath = `${generatedPath}.map`;
  if (!existsSync(mapPath)) return null;
  const map = JSON.parse(readFileSync(mapPath, 'utf8')) as { sources: string[]; mappings: string };
  const lines = map.mappings.split(';').map(() => [] as [number, number][]); // [generated column, source index]
  let source = 0;
  map.mappings.split(';').forEach((line, lineIndex) => {
    let column = 0;
    for (const segment of line.split(',')) {
      if (!segment) continue;
      const values = decodeVlq(segment);
      column += values[0] ?? 0;
      if (values.length >= 4) {
        source += values[1] ?? 0;
        lines[lineIndex]!.push([column, source]);
      }
      // Original line and column deltas (values[2], values[3]) are not needed to name the file.
    }
  });
  return {
    lookup(line, column) {
      const segments = lines[line];
      if (!segments || segments.length === 0) return undefined;
      let found: number | undefined;
      for (const [col, src] of segments) {
        if (col > column) break;
        found = src;
      }
      return map.sources[found ?? segments[0]![1]];
    },
  };
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function decodeVlq(segment: string): number[] {
  const values: number[] = [];
  let value = 0;
  let shift = 0;
  for (const char of segment) {
    const digit = BASE64.indexOf(char);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}
