import type { z } from 'zod';
import { ConfigError } from '../errors.js';

/** Turns the first zod issue into a ConfigError naming the field path and what is accepted. */
export function configErrorFromZod(error: z.ZodError, root: string): ConfigError {
  const issue = error.issues[0];
  const path = [root, ...issue.path.map((part) => (typeof part === 'number' ? `[${part}]` : String(part)))]
    .filter((part) => part !== '')
    .join('.')
    .replace(/\.\[/g, '[');
  // zod's default bound of an int is the largest exact double: say it as a user reads it.
  const message = issue.message.replaceAll(String(Number.MAX_SAFE_INTEGER), '2^53-1');
  return new ConfigError(path || root, message, 'input' in issue ? issue.input : undefined);
}
