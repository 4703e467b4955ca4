/**
 * What an explicit `null` means in a management request: the same as leaving the field out.
 *
 * Generated clients differ: some omit unset fields, others (Java's, Python's on a GET → PUT round trip)
 * write every field of their model with `null` for the unset ones. Reading null as absent makes both mean
 * "use the default / keep the configured value", and lets openapi.yaml declare plain (non-nullable) types.
 *
 * Only the request's own structure is touched — the body's top level, `config` and `config.retry` —
 * never user data inside it (`payload`, a webhook `schema`, `headers`), where null is a value. The one
 * null with a meaning of its own, a webhook config's `"secret": null` on PUT (remove the stored secret),
 * is kept for the route to see.
 */
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function withoutNulls(obj: Obj, keep: readonly string[] = []): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(obj)) if (v !== null || keep.includes(k)) out[k] = v;
  return out;
}

/** The body with null members of the top level, `config` and `config.retry` removed (see above). */
export function dropRequestNulls(body: unknown): unknown {
  if (!isObj(body)) return body;
  const out = withoutNulls(body);
  if (isObj(out.config)) {
    const config = withoutNulls(out.config, ['secret']);
    if (isObj(config.retry)) config.retry = withoutNulls(config.retry);
    out.config = config;
  }
  return out;
}
