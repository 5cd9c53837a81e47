/** How a failed zod parse reads in an error or a log line: the one wording for messages, envelopes, environments and configuration. */
import type { z } from 'zod';

/**
 * Every issue as `path: message`, `; ` between them (`events.0.target: Required; ...`). An issue
 * about the value as a whole has no path: `whole` names it (`body`, `message`, `environment`).
 */
export function describeZodIssues(error: z.ZodError, whole: string): string {
  return error.issues.map((issue) => `${issue.path.join('.') || whole}: ${issue.message}`).join('; ');
}

/**
 * Only where each issue is, `, ` between them (`target.digest, target.tag`): the log line of an
 * ignored event names the schema's fields and echoes none of the values a sender wrote (zod's
 * messages may quote them).
 */
export function zodIssuePaths(error: z.ZodError): string {
  return error.issues.map((issue) => issue.path.join('.')).join(', ');
}

/**
 * The first issue of a configuration entry a person wrote, in their words: `"url" is required`,
 * `unknown field "urll"`, `scope must be an object, not string`, with array indexes as `[0]`.
 */
export function describeEntryIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const field = issue.path
    .map((part) => (typeof part === 'number' ? `[${part}]` : `.${part}`))
    .join('')
    .replace(/^\./, '');
  if (issue.code === 'unrecognized_keys')
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}${field ? ` in ${field}` : ''}`;
  if (issue.code === 'invalid_type' && issue.received === 'undefined') return `"${field}" is required`;
  if (issue.code === 'invalid_type')
    return `${field || 'the entry'} must be ${issue.expected === 'object' ? 'an object' : `a ${issue.expected}`}, not ${issue.received}`;
  return `${field}: ${issue.message}`;
}
