/**
 * SHA-256 digests (Web Crypto) for run manifests: which data, byte for byte, a run trained on.
 *
 * @module
 */

/**
 * The SHA-256 digest of `data` as 64 lowercase hex digits. A string is hashed as its UTF-8 bytes,
 * so `sha256Hex(text)` equals `sha256sum` of a file holding exactly that text.
 */
export async function sha256Hex(data: string | Uint8Array | ArrayBuffer): Promise<string> {
  let bytes: Uint8Array<ArrayBuffer>;
  if (typeof data === "string") bytes = new TextEncoder().encode(data);
  else if (!(data instanceof Uint8Array)) bytes = new Uint8Array(data);
  else if (data.buffer instanceof ArrayBuffer) bytes = data as Uint8Array<ArrayBuffer>;
  else bytes = new Uint8Array(data); // a SharedArrayBuffer view: copy, as crypto.subtle wants
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}
