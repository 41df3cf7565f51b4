/**
 * Checked reads of optional config.json fields, shared by the families' `configFromHf`.
 *
 * @module
 */

/** An optional config.json number that must be finite and > 0 (`null` = absent). */
export function positiveField(raw: Record<string, unknown>, key: string, dflt: number): number {
  const v = raw[key] ?? dflt;
  if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
    throw new Error(`config.json: ${key} = ${JSON.stringify(v)}: expected a number > 0`);
  }
  return v;
}

/** An optional config.json boolean (`null` = absent). */
export function boolField(raw: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = raw[key] ?? dflt;
  if (typeof v !== "boolean") {
    throw new Error(`config.json: ${key} = ${JSON.stringify(v)}: expected true or false`);
  }
  return v;
}
