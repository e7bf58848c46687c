/**
 * Shapes a value to the response schema a request asked for, the way Gemini's constrained
 * decoding does: only the schema's properties, every one of them present, arrays cut to
 * `maxItems`, numbers within `minimum`/`maximum`, strings within `enum`. Accepts both forms a
 * request can carry: `responseJsonSchema` (JSON Schema, lower-case types) and `responseSchema`
 * (the OpenAPI subset, upper-case types, int64 limits as strings).
 */

/** A schema node as found in a request body. */
export type SchemaNode = Record<string, unknown>;

function num(value: unknown): number | undefined {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

function clamp(n: number, schema: SchemaNode): number {
  const min = num(schema.minimum);
  const max = num(schema.maximum);
  if (min !== undefined && n < min) n = min;
  if (max !== undefined && n > max) n = max;
  return n;
}

function typeOf(schema: SchemaNode): string {
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== 'null') : schema.type;
  if (typeof t === 'string') return t.toLowerCase();
  if (schema.properties) return 'object';
  if (schema.items) return 'array';
  return 'string';
}

/** Returns `value` reshaped to `schema` (missing parts get empty values of their type). */
export function conform(value: unknown, schema: SchemaNode | undefined): unknown {
  if (!schema || typeof schema !== 'object') return value;
  const enumValues = Array.isArray(schema.enum) ? schema.enum : undefined;
  switch (typeOf(schema)) {
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, SchemaNode>;
      const source = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
      return Object.fromEntries(Object.entries(props).map(([key, sub]) => [key, conform(source[key], sub)]));
    }
    case 'array': {
      const items = Array.isArray(value) ? value : [];
      const max = num(schema.maxItems);
      const cut = max === undefined ? items : items.slice(0, Math.max(0, max));
      return cut.map((item) => conform(item, schema.items as SchemaNode | undefined));
    }
    case 'integer':
      return clamp(Math.round(num(value) ?? num(schema.minimum) ?? 0), schema);
    case 'number':
      return clamp(num(value) ?? num(schema.minimum) ?? 0, schema);
    case 'boolean':
      return value === true;
    default: {
      const s = typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
      if (enumValues && !enumValues.includes(s)) return enumValues[0];
      return s;
    }
  }
}
