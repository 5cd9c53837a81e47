// A strict reader of Prometheus's text exposition format (version 0.0.4), for tests: no package in
// node_modules parses it (prom-client only writes it). It throws on any line it does not
// understand, a sample before its family's TYPE, a sample whose name does not belong to its
// family, a label written twice, and a series given twice.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<MetricType, string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const series = new Set<string>();
  /** HELP may come before its TYPE: kept here until the TYPE arrives. */
  const helps = new Map<string, string>();
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  text.split('\n').forEach((line, index) => {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line === '') return;
    const meta = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, 'HELP' | 'TYPE', string, string];
      if (kind === 'TYPE') {
        if (families.has(name)) throw new Error(`${where}: TYPE for ${name} given twice, or after its samples`);
        if (!TYPES.has(rest as MetricType)) throw new Error(`${where}: unknown type`);
        const help = helps.get(name);
        families.set(name, { name, type: rest as MetricType, samples: [], ...(help !== undefined ? { help } : {}) });
      } else {
        const family = families.get(name);
        if (family) family.help = unescape(rest, where, false);
        else helps.set(name, unescape(rest, where, false));
      }
      return;
    }
    if (line.startsWith('#')) return;
    const sample = parseSample(line, where);
    const family = familyOf(sample.name, families);
    if (!family) throw new Error(`${where}: sample with no TYPE before it`);
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: series given twice`);
    series.add(key);
    family.samples.push(sample);
  });
  return families;
}

function familyOf(sampleName: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  for (const family of families.values()) if (SUFFIXES[family.type].some((suffix) => family.name + suffix === sampleName)) return family;
  return undefined;
}

function parseSample(line: string, where: string): Sample {
  const head = new RegExp(`^(${NAME})`).exec(line);
  if (!head) throw new Error(`${where}: not a metric name`);
  const name = head[1]!;
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at++;
    while (line[at] !== '}') {
      const label = /^([^=]*)="/.exec(line.slice(at));
      if (!label || !LABEL_NAME.test(label[1]!)) throw new Error(`${where}: malformed label at ${at}`);
      at += label[0].length;
      let value = '';
      for (;;) {
        const char = line[at];
        if (char === undefined) throw new Error(`${where}: unterminated label value`);
        if (char === '"') break;
        if (char === '\\') {
          const next = line[at + 1];
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else throw new Error(`${where}: bad escape in a label value`);
          at += 2;
          continue;
        }
        value += char;
        at++;
      }
      at++;
      if (label[1]! in labels) throw new Error(`${where}: label ${label[1]} given twice`);
      labels[label[1]!] = value;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') throw new Error(`${where}: expected , or } at ${at}`);
    }
    at++;
  }
  const rest = /^ ([^ ]+)(?: (-?\d+))?$/.exec(line.slice(at));
  if (!rest) throw new Error(`${where}: expected a value (and at most a timestamp) after the name`);
  return { name, labels, value: parseValue(rest[1]!, where) };
}

/** A float as Prometheus reads one (Go's ParseFloat): `NaN` and `Inf` in any case, so prom-client's `Nan` too. */
function parseValue(text: string, where: string): number {
  const special = text.toLowerCase();
  if (special === '+inf' || special === 'inf') return Infinity;
  if (special === '-inf') return -Infinity;
  if (special === 'nan') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: not a number: ${text}`);
  return Number(text);
}

function unescape(text: string, where: string, quotes: boolean): string {
  return text.replace(/\\(.)/g, (_match, char: string) => {
    if (char === 'n') return '\n';
    if (char === '\\' || (quotes && char === '"')) return char;
    throw new Error(`${where}: bad escape \\${char}`);
  });
}

/** The value of one series, or undefined; `labels` must match exactly (no more, no fewer). */
export function sampleValue(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  for (const family of families.values())
    for (const sample of family.samples) if (sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === wanted) return sample.value;
  return undefined;
}
