// CloudFormation's own reading of a packaged template's conditions, for the intrinsics the stack
// uses in them (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition) and Fn::If with AWS::NoValue: what
// a deployed resource would hold, so a test asserts on that rather than on the template's text.
// A condition over anything else (a Ref to a resource, a parameter) is an error, not a guess.

type Template = { Conditions?: unknown; [key: string]: unknown };

/** The truth of one named condition. */
export function conditionHolds(template: Template, name: string): boolean {
  const condition = (template.Conditions as Record<string, unknown> | undefined)?.[name];
  if (condition === undefined) throw new Error(`the template has no condition ${name}`);
  return evaluate(template, condition);
}

function evaluate(template: Template, expression: unknown): boolean {
  const [fn, args] = Object.entries(expression as Record<string, unknown>)[0] ?? [];
  const list = args as unknown[];
  switch (fn) {
    case 'Fn::Equals':
      if (typeof list[0] !== 'string' || typeof list[1] !== 'string') throw new Error(`Fn::Equals over ${JSON.stringify(list)}: not plain strings`);
      return list[0] === list[1];
    case 'Fn::Not':
      return !evaluate(template, list[0]);
    case 'Fn::And':
      return list.every((item) => evaluate(template, item));
    case 'Fn::Or':
      return list.some((item) => evaluate(template, item));
    case 'Condition':
      return conditionHolds(template, args as string);
    default:
      throw new Error(`a condition this reading does not model: ${JSON.stringify(expression)}`);
  }
}

/** A value with every Fn::If decided; a branch of AWS::NoValue removes its key (or list item). */
export function resolveIfs(template: Template, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((item) => resolveIfs(template, item)).filter((item) => item !== NO_VALUE);
  if (value === null || typeof value !== 'object') return value;
  const record = value as Record<string, unknown>;
  if ('Fn::If' in record) {
    const [name, then, otherwise] = record['Fn::If'] as [string, unknown, unknown];
    return resolveIfs(template, conditionHolds(template, name) ? then : otherwise);
  }
  if (record.Ref === 'AWS::NoValue') return NO_VALUE;
  const entries = Object.entries(record)
    .map(([key, item]) => [key, resolveIfs(template, item)] as const)
    .filter(([, item]) => item !== NO_VALUE);
  return Object.fromEntries(entries);
}

const NO_VALUE = Symbol('AWS::NoValue');
