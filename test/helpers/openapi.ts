import fs from 'node:fs';
import YAML from 'yaml';
import { OPENAPI_PATH } from '../../src/api/app';

/** A JSON Schema / OpenAPI object as read from the YAML (untyped on purpose: tests walk it generically). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type SpecNode = any;

export interface SpecParam {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required: boolean;
  schema: SpecNode;
}

export interface SpecOperation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** The path template as written in openapi.yaml, e.g. /api/v1/triggers/{id}. */
  template: string;
  operationId: string;
  params: SpecParam[];
  body?: { required: boolean; schema: SpecNode; contentTypes: string[] };
  /** Status code (as a string, or 'default') -> media types declared for it. */
  responses: Record<string, string[]>;
  /** `security: []` on the operation: no API key needed. */
  public: boolean;
}

export const SPEC: SpecNode = YAML.parse(fs.readFileSync(OPENAPI_PATH, 'utf8'));

/** Resolves a local `$ref` (`#/components/...`), following chains. */
export function resolveRef(node: SpecNode): SpecNode {
  let n = node;
  for (let i = 0; i < 32 && n && typeof n === 'object' && typeof n.$ref === 'string'; i++) {
    const parts = (n.$ref as string).replace(/^#\//, '').split('/');
    n = parts.reduce((o: SpecNode, k: string) => (o == null ? o : o[k.replace(/~1/g, '/').replace(/~0/g, '~')]), SPEC);
  }
  return n;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Every operation of openapi.yaml whose path passes `include`. */
export function specOperations(include: (template: string) => boolean): SpecOperation[] {
  const out: SpecOperation[] = [];
  for (const [template, rawItem] of Object.entries(SPEC.paths as Record<string, SpecNode>)) {
    if (!include(template)) continue;
    const item = resolveRef(rawItem);
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const byKey = new Map<string, SpecParam>();
      for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])].map(resolveRef)) {
        byKey.set(`${p.in}:${p.name}`, { name: p.name, in: p.in, required: Boolean(p.required), schema: p.schema ?? {} });
      }
      let body: SpecOperation['body'];
      if (op.requestBody) {
        const rb = resolveRef(op.requestBody);
        const content = rb.content ?? {};
        const first = Object.keys(content)[0];
        body = { required: Boolean(rb.required), schema: first ? (content[first].schema ?? {}) : {}, contentTypes: Object.keys(content) };
      }
      const responses: Record<string, string[]> = {};
      for (const [status, r] of Object.entries(op.responses ?? {})) responses[status] = Object.keys(resolveRef(r).content ?? {});
      const security = op.security ?? SPEC.security ?? [];
      out.push({
        method,
        template,
        operationId: op.operationId ?? `${method} ${template}`,
        params: [...byKey.values()],
        body,
        responses,
        public: Array.isArray(security) && security.length === 0,
      });
    }
  }
  return out;
}

/** The API's own routes: everything under /api/v1, plus the health checks. */
export const apiOperations = (): SpecOperation[] => specOperations((p) => p.startsWith('/api/v1/') || p.startsWith('/health'));

/** A regular expression matching concrete paths of a template (a parameter is one non-empty segment). */
export function templateRegExp(template: string): RegExp {
  const src = template
    .split(/(\{[^}]+\})/)
    .map((part) => (part.startsWith('{') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${src}$`);
}
