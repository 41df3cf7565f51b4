import assert from "node:assert/strict";
import {
  type Dtype,
  DTYPE_SIZES,
  MAX_HEADER_BYTES,
  numElements,
  parseSafetensors,
  readSafetensors,
  type SafetensorsTensor,
  serializeSafetensors,
  tensorFromArray,
  tensorView,
  writeSafetensors,
} from "../../lib/io/mod.ts";

/** Small seeded RNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A file from a raw header string (not padded) and a data section. */
function build(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** A file with the given header object and `dataLen` zero bytes of data. */
function buildObj(header: unknown, dataLen: number): Uint8Array {
  return build(JSON.stringify(header), new Uint8Array(dataLen));
}

function throwsWith(bytes: Uint8Array, re: RegExp): void {
  assert.throws(() => parseSafetensors(bytes), re);
}

const ALL_DTYPES = Object.keys(DTYPE_SIZES) as Dtype[];

Deno.test("safetensors: round trip of random tensors of every dtype and shape", () => {
  const r = rng(1234);
  for (let trial = 0; trial < 20; trial++) {
    const tensors = new Map<string, SafetensorsTensor>();
    for (const dtype of ALL_DTYPES) {
      const rank = Math.floor(r() * 4); // 0..3; rank 0 is a scalar
      const shape = Array.from({ length: rank }, () => Math.floor(r() * 5)); // dims 0..4
      const data = new Uint8Array(numElements(shape) * DTYPE_SIZES[dtype]);
      for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
      tensors.set(`t${trial}.${dtype}.${Math.floor(r() * 1000)}`, { dtype, shape, data });
    }
    // The cases the random draw may miss.
    tensors.set("scalar", { dtype: "F32", shape: [], data: new Uint8Array([0, 0, 128, 63]) });
    tensors.set("empty", { dtype: "I64", shape: [3, 0, 2], data: new Uint8Array(0) });
    const metadata = { format: "pt", trial: String(trial), "ünï": "cødé 🦕" };

    const bytes = serializeSafetensors(tensors, metadata);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(n % 8, 0, "header padded to a multiple of 8");
    const back = parseSafetensors(bytes);
    assert.deepEqual(back.metadata, metadata);
    assert.equal(back.tensors.size, tensors.size);
    for (const [name, t] of tensors) {
      const u = back.tensors.get(name);
      assert.ok(u, name);
      assert.equal(u.dtype, t.dtype);
      assert.deepEqual(u.shape, t.shape);
      assert.deepEqual(u.data, t.data);
      assert.equal(u.data.byteOffset, 0, "copied into its own buffer");
      assert.equal(tensorView(u).length, numElements(t.shape));
    }
    // Serializing the parsed file gives the same bytes.
    assert.deepEqual(serializeSafetensors(back.tensors, back.metadata), bytes);
  }
});

Deno.test("safetensors: typed views per dtype", () => {
  const f32 = tensorFromArray("F32", [3], new Float32Array([1, -2.5, 1e-3]));
  const i64 = tensorFromArray("I64", [2], new BigInt64Array([-5n, 1n << 40n]));
  const i32 = tensorFromArray("I32", [2], new Int32Array([-7, 7]));
  const f16 = tensorFromArray("F16", [1], new Uint16Array([0x3c00]));
  const bf16 = tensorFromArray("BF16", [1], new Uint16Array([0x3f80]));
  const i8 = tensorFromArray("I8", [2], new Int8Array([-128, 127]));
  const u8 = tensorFromArray("U8", [1], new Uint8Array([255]));
  const f64 = tensorFromArray("F64", [1], new Float64Array([Math.PI]));
  const back = parseSafetensors(serializeSafetensors({ f32, i64, i32, f16, bf16, i8, u8, f64 }));
  const view = (name: string) => tensorView(back.tensors.get(name)!);
  assert.deepEqual(view("f32"), new Float32Array([1, -2.5, 1e-3]));
  assert.deepEqual(view("i64"), new BigInt64Array([-5n, 1n << 40n]));
  assert.deepEqual(view("i32"), new Int32Array([-7, 7]));
  assert.deepEqual(view("f16"), new Uint16Array([0x3c00]));
  assert.deepEqual(view("bf16"), new Uint16Array([0x3f80]));
  assert.deepEqual(view("i8"), new Int8Array([-128, 127]));
  assert.deepEqual(view("u8"), new Uint8Array([255]));
  assert.deepEqual(view("f64"), new Float64Array([Math.PI]));
  // A misaligned data array is copied, not rejected.
  const odd = new Uint8Array(9).subarray(1);
  odd.set([0, 0, 128, 63, 0, 0, 0, 64]);
  assert.deepEqual(tensorView({ dtype: "F32", shape: [2], data: odd }), new Float32Array([1, 2]));
  assert.throws(() => tensorFromArray("F32", [3], new Float32Array(2)), /needs 12/);
});

Deno.test("safetensors: byte-exact against a hand-built file", () => {
  // One F32 tensor "w" of shape [2, 2] = [[1, 2], [3, -0.5]].
  const header = '{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}';
  assert.equal(header.length, 57);
  const padded = header + "       "; // 7 spaces -> 64 bytes
  // deno-fmt-ignore
  const expected = [
    64, 0, 0, 0, 0, 0, 0, 0, // header length, u64 little-endian
    ...Array.from(padded, (c) => c.charCodeAt(0)),
    0x00, 0x00, 0x80, 0x3f, // 1.0
    0x00, 0x00, 0x00, 0x40, // 2.0
    0x00, 0x00, 0x40, 0x40, // 3.0
    0x00, 0x00, 0x00, 0xbf, // -0.5
  ];
  const w = tensorFromArray("F32", [2, 2], new Float32Array([1, 2, 3, -0.5]));
  assert.deepEqual(serializeSafetensors({ w }), new Uint8Array(expected));

  const back = parseSafetensors(new Uint8Array(expected));
  assert.deepEqual([...back.tensors.keys()], ["w"]);
  assert.deepEqual(back.metadata, {});
  assert.deepEqual(back.tensors.get("w")!.shape, [2, 2]);
  assert.deepEqual(tensorView(back.tensors.get("w")!), new Float32Array([1, 2, 3, -0.5]));

  // With metadata (listed first) and two tensors (sorted by name, "0" before "b"); this header
  // is already 136 = 17 * 8 bytes, so it gets no padding.
  const b = tensorFromArray("U8", [3], new Uint8Array([7, 8, 9]));
  const zero = tensorFromArray("I32", [], new Int32Array([-1]));
  const h2 = '{"__metadata__":{"format":"pt"},' +
    '"0":{"dtype":"I32","shape":[],"data_offsets":[0,4]},' +
    '"b":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}';
  assert.equal(h2.length, 136);
  // deno-fmt-ignore
  const expected2 = [
    136, 0, 0, 0, 0, 0, 0, 0,
    ...Array.from(h2, (c) => c.charCodeAt(0)),
    0xff, 0xff, 0xff, 0xff, // -1
    7, 8, 9,
  ];
  assert.deepEqual(
    serializeSafetensors({ b, "0": zero }, { format: "pt" }),
    new Uint8Array(expected2),
  );
});

Deno.test("safetensors: reading an unpadded header works", () => {
  const data = new Uint8Array(new Float32Array([5]).buffer);
  const bytes = build('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', data);
  assert.deepEqual(tensorView(parseSafetensors(bytes).tensors.get("x")!), new Float32Array([5]));
});

Deno.test("safetensors: malformed: file shorter than 8 bytes", () => {
  throwsWith(new Uint8Array(5), /file too short/);
});

Deno.test("safetensors: malformed: header length beyond the file", () => {
  const bytes = build("{}");
  new DataView(bytes.buffer).setBigUint64(0, 100n, true);
  throwsWith(bytes, /header length 100 goes beyond the end of the file/);
});

Deno.test("safetensors: malformed: absurdly large header length", () => {
  const bytes = build("{}");
  new DataView(bytes.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES) + 1n, true);
  throwsWith(bytes, /too large/);
  new DataView(bytes.buffer).setBigUint64(0, 0xffffffffffffffffn, true);
  throwsWith(bytes, /too large/);
});

Deno.test("safetensors: malformed: header not valid UTF-8", () => {
  const bytes = build("{}  ");
  bytes[10] = 0xff;
  throwsWith(bytes, /not valid UTF-8/);
});

Deno.test("safetensors: malformed: header not JSON", () => {
  throwsWith(build('{"a": '), /not valid JSON/);
  throwsWith(build(""), /not valid JSON/);
});

Deno.test("safetensors: malformed: header not an object", () => {
  throwsWith(build("[]"), /not a JSON object/);
  throwsWith(build("42"), /not a JSON object/);
  throwsWith(build("null"), /not a JSON object/);
});

Deno.test("safetensors: malformed: tensor entry not an object", () => {
  throwsWith(buildObj({ x: [1, 2] }, 0), /tensor "x": entry is not a JSON object/);
});

Deno.test("safetensors: malformed: unknown dtype", () => {
  throwsWith(
    buildObj({ x: { dtype: "F12", shape: [1], data_offsets: [0, 4] } }, 4),
    /tensor "x": unknown dtype "F12"/,
  );
  throwsWith(
    buildObj({ x: { shape: [1], data_offsets: [0, 4] } }, 4),
    /tensor "x": unknown dtype undefined/,
  );
});

Deno.test("safetensors: malformed: bad shape", () => {
  for (const shape of [[-1], [1.5], ["2"], 4, null, [2 ** 60]]) {
    throwsWith(
      buildObj({ x: { dtype: "U8", shape, data_offsets: [0, 0] } }, 0),
      /tensor "x": shape .* is not an array of non-negative integers/,
    );
  }
});

Deno.test("safetensors: malformed: bad data_offsets", () => {
  for (const offs of [[0], [0, 1, 2], [2, 1], [0.5, 1], [-1, 0], "0,1", undefined]) {
    throwsWith(
      buildObj({ x: { dtype: "U8", shape: [1], data_offsets: offs } }, 1),
      /tensor "x": data_offsets .* is not \[begin, end\]/,
    );
  }
});

Deno.test("safetensors: malformed: offsets out of range", () => {
  throwsWith(
    buildObj({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, 4),
    /tensor "x": data_offsets \[0, 8\] out of range \(data section is 4 bytes\)/,
  );
});

Deno.test("safetensors: malformed: byte length does not match shape", () => {
  throwsWith(
    buildObj({ x: { dtype: "F32", shape: [2, 3], data_offsets: [0, 20] } }, 20),
    /tensor "x": byte length 20 does not match shape \[2, 3\] of F32 \(expected 24 bytes\)/,
  );
});

Deno.test("safetensors: malformed: overlapping tensors", () => {
  throwsWith(
    buildObj({
      a: { dtype: "U8", shape: [4], data_offsets: [0, 4] },
      b: { dtype: "U8", shape: [4], data_offsets: [2, 6] },
    }, 6),
    /tensor "b" \[2, 6\) overlaps tensor "a"/,
  );
});

Deno.test("safetensors: malformed: hole between tensors", () => {
  throwsWith(
    buildObj({
      a: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
      b: { dtype: "U8", shape: [2], data_offsets: [4, 6] },
    }, 6),
    /hole in data section: bytes \[2, 4\) before tensor "b"/,
  );
  throwsWith(
    buildObj({ b: { dtype: "U8", shape: [2], data_offsets: [1, 3] } }, 3),
    /hole in data section: bytes \[0, 1\) before tensor "b"/,
  );
});

Deno.test("safetensors: malformed: bytes left over at the end", () => {
  throwsWith(
    buildObj({ a: { dtype: "U8", shape: [2], data_offsets: [0, 2] } }, 5),
    /3 bytes left over at the end of the data section/,
  );
  throwsWith(buildObj({}, 1), /1 bytes left over/);
});

Deno.test("safetensors: malformed: duplicate tensor names are detected", () => {
  const entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
  throwsWith(build(`{"a":${entry}, "a" :${entry}}`, new Uint8Array(1)), /duplicate key "a"/);
  // Escaped spellings of the same name are the same key.
  throwsWith(build(`{"a":${entry},"\\u0061":${entry}}`, new Uint8Array(1)), /duplicate key "a"/);
  // Equal keys at deeper levels are fine.
  const ok = build(
    `{"__metadata__":{"dtype":"x","k":"v \\" \\\\"},"a":${entry}}`,
    new Uint8Array(1),
  );
  assert.deepEqual(parseSafetensors(ok).metadata, { dtype: "x", k: 'v " \\' });
});

Deno.test("safetensors: malformed: __metadata__ not a map of strings", () => {
  throwsWith(buildObj({ __metadata__: { epoch: 3 } }, 0), /__metadata__ value for "epoch"/);
  throwsWith(buildObj({ __metadata__: ["a"] }, 0), /__metadata__ is not a JSON object/);
});

Deno.test("safetensors: writer rejects invalid input", () => {
  const bad = { dtype: "F32" as Dtype, shape: [2], data: new Uint8Array(4) };
  assert.throws(() => serializeSafetensors({ bad }), /tensor "bad": data has 4 bytes/);
  const ok = tensorFromArray("U8", [1], new Uint8Array([1]));
  assert.throws(() => serializeSafetensors({ __metadata__: ok }), /reserved/);
  assert.throws(
    () => serializeSafetensors({ ok }, { n: 1 } as unknown as Record<string, string>),
    /metadata value for "n" is not a string/,
  );
  assert.throws(
    () => serializeSafetensors({ x: { ...ok, dtype: "Q4" as Dtype } }),
    /tensor "x": unknown dtype "Q4"/,
  );
});

Deno.test("safetensors: atomic write, read back, no temp file left", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    const w = tensorFromArray("F32", [2, 2], new Float32Array([1, 2, 3, 4]));
    await writeSafetensors(path, { w }, { format: "pt" });
    const back = await readSafetensors(path);
    assert.deepEqual(tensorView(back.tensors.get("w")!), new Float32Array([1, 2, 3, 4]));
    assert.deepEqual(back.metadata, { format: "pt" });
    // Overwrite an existing file.
    await writeSafetensors(path, { v: w });
    assert.deepEqual([...(await readSafetensors(path)).tensors.keys()], ["v"]);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["model.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: failed write keeps the existing file and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    const w = tensorFromArray("F32", [1], new Float32Array([7]));
    await writeSafetensors(path, { w });
    const before = await Deno.readFile(path);

    // Fails while serializing: nothing is written.
    const bad = { dtype: "F32" as Dtype, shape: [3], data: new Uint8Array(4) };
    await assert.rejects(() => writeSafetensors(path, { bad }), /data has 4 bytes/);
    assert.deepEqual(await Deno.readFile(path), before);

    // Fails at the rename (the target is a non-empty directory): the temp file is removed.
    const dirPath = `${dir}/sub.safetensors`;
    await Deno.mkdir(dirPath);
    await Deno.writeFile(`${dirPath}/keep`, new Uint8Array([1]));
    await assert.rejects(() => writeSafetensors(dirPath, { w }));

    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["model.safetensors", "sub.safetensors"]);
    assert.deepEqual(await Deno.readFile(path), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
