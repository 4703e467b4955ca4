/**
 * The headers of a delivery attempt as the attempts history keeps them: secrets masked, and the whole
 * bounded, so an endpoint that answers with a hundred cookies costs a row no more than a few KiB.
 * Pure functions: the worker applies them before anything is written, so a secret never reaches the table.
 */

/** Header names whose values are credentials or signatures: kept as a mask, never as the value. */
const SECRET_NAME =
  /(authorization|signature|cookie|secret|token|password|passwd|api[-_]?key|apikey|credential|session|x-auth|x-csrf|x-xsrf|x-amz-security)/i;

/** How much of one header's value is kept. */
export const HEADER_VALUE_MAX_CHARS = 512;
/** How much of an attempt's headers (each direction, as JSON) is kept. */
export const ATTEMPT_HEADERS_MAX_CHARS = 4096;

export const MASK = '••••••';

export type RawHeaders = Record<string, string | string[] | number | undefined>;

// Quotes, backslashes and control characters are escaped in JSON (checked by char code: no control-character regex).
const NEEDS_ESCAPE = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c === 34 || c === 92) return true;
  }
  return false;
};

/** The length of a string as JSON text (quotes included), without building it in the common case. */
function jsonLength(s: string): number {
  return NEEDS_ESCAPE(s) ? JSON.stringify(s).length : s.length + 2;
}

/** Whether a header carries a secret (by its name). */
export function isSecretHeader(name: string): boolean {
  return SECRET_NAME.test(name);
}

/**
 * Headers for the history: names lower-cased, repeated values joined, secrets masked (an Authorization
 * value keeps its scheme, "Bearer ••••••", which says what was sent without saying the credential), long
 * values cut, and headers beyond ATTEMPT_HEADERS_MAX_CHARS left out with a count of how many.
 */
export function headersForHistory(raw: RawHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  let size = 2;
  const names = Object.keys(raw);
  let left = 0;
  for (const [i, name] of names.entries()) {
    const v = raw[name];
    if (v === undefined) continue;
    const key = name.toLowerCase();
    let value = Array.isArray(v) ? v.join(', ') : String(v);
    if (isSecretHeader(key)) {
      const scheme =
        key === 'authorization' || key === 'proxy-authorization' ? /^([A-Za-z][A-Za-z0-9_-]*)\s+\S/.exec(value)?.[1] : undefined;
      value = scheme ? `${scheme} ${MASK}` : MASK;
    } else if (value.length > HEADER_VALUE_MAX_CHARS) {
      value = `${value.slice(0, HEADER_VALUE_MAX_CHARS)}… (${value.length} chars)`;
    }
    const cost = jsonLength(key) + jsonLength(value) + 2;
    // Room is kept for the "not kept" note, so the JSON never passes the bound.
    if (size + cost > ATTEMPT_HEADERS_MAX_CHARS - 64) {
      left = names.length - i;
      break;
    }
    out[key] = value;
    size += cost;
  }
  if (left > 0) out['…'] = `${left} more header${left === 1 ? '' : 's'} not kept`;
  return out;
}
