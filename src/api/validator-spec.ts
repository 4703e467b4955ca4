import YAML from 'yaml';
import type { OpenAPIV3 } from 'express-openapi-validator/dist/framework/types';

type Schema = OpenAPIV3.SchemaObject;

/**
 * The request bodies that carry a trigger `config`, and the fields each requires, as the server reads them.
 *
 * openapi.yaml describes each of them as a oneOf of four per-type bodies (discriminated by `type`, each with
 * its closed per-type config), so generated clients get one exact type per trigger type. The server checks
 * a config with its own validation (src/triggers/validate.ts), which states the same rules and names every
 * offending field (`config.cron`, `config.retry.max_attempts`, "not a property of a cron_scheduled
 * trigger") where a oneOf could only say that no branch matched. So express-openapi-validator gets these
 * bodies as one object each — the union of the variants' fields, `type` any trigger type, `config` any
 * object — and every error answer stays the server's own. `PUT /triggers/{id}` also takes an update
 * without `type` (the stored type applies), as older clients send `{"status": "inactive"}`.
 * Responses are checked against the exact per-type schemas.
 */
const MERGED_REQUEST_BODIES: Record<string, string[]> = {
  TriggerCreate: ['name', 'type', 'config'],
  TriggerUpdate: [],
  UnsavedTestRun: ['type', 'config'],
  SchedulePreviewRequest: ['type', 'config'],
};

/** openapi.yaml as express-openapi-validator gets it (see MERGED_REQUEST_BODIES). */
export function validatorSpec(specText: string): OpenAPIV3.DocumentV3_1 {
  const spec = YAML.parse(specText) as OpenAPIV3.DocumentV3_1;
  const schemas = spec.components!.schemas! as Record<string, Schema>;
  for (const [name, required] of Object.entries(MERGED_REQUEST_BODIES)) {
    const union = schemas[name] as { oneOf?: OpenAPIV3.ReferenceObject[] };
    const variants = (union.oneOf ?? []).map((v) => schemas[v.$ref.split('/').pop()!]);
    const properties: Record<string, Schema | OpenAPIV3.ReferenceObject> = {};
    for (const v of variants) Object.assign(properties, v.properties);
    properties.type = { $ref: '#/components/schemas/TriggerType' };
    properties.config = { type: 'object' };
    schemas[name] = { type: 'object', required, additionalProperties: false, minProperties: 1, properties };
  }
  return spec;
}
