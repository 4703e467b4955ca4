/**
 * How deeply a request body may nest arrays and objects. JSON.parse copes with very deep input, but what
 * comes after does not: JSON.stringify (storing the payload), ajv (validating it against a recursive
 * schema) and the response serialiser all recurse, and overflow the stack somewhere below ~5,000 levels —
 * a 500 for a 40 kB body. 64 levels is far beyond any real payload; the wrapper objects of the API's own
 * bodies (`{ "config": { "payload": … } }`) take a few of them.
 */
export const MAX_JSON_DEPTH = 64;

/** An error body-parser passes on as a 400 naming the body (see errorHandler's validator-error branch). */
export class JsonTooDeepError extends Error {
  readonly status = 400;
  readonly errors = [{ path: '/body', message: `nests arrays/objects deeper than ${MAX_JSON_DEPTH} levels` }];
  constructor() {
    super(`The body nests arrays/objects deeper than ${MAX_JSON_DEPTH} levels`);
    this.name = 'JsonTooDeepError';
  }
}

/**
 * The nesting depth of JSON text, by one linear scan of its bytes (before it is parsed), stopping as soon
 * as it passes `max`. Brackets inside strings do not count; invalid JSON is left to the parser.
 */
export function jsonDepthExceeds(buf: Uint8Array, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}
