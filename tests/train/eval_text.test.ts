// evaluateText against an independent computation: the same windows cut here by hand, the
// model's logits turned into cross-entropy in float64, and the bytes of the predicted text
// counted from the vocabulary (GPT-2 byte-level BPE: one character of a token string = one
// byte), not by decoding.
import assert from "node:assert/strict";
import { ByteTokenizer, cpu, GPT, type Tokenizer } from "../../lib/mod.ts";
import { loadModel } from "../../lib/io/mod.ts";
import type { HfTokenizer } from "../../lib/data/bpe.ts";
import type { CausalLM } from "../../lib/nn/causal_lm.ts";
import { Tensor } from "../../lib/tensor.ts";
import { evaluateExamples, evaluateText } from "../../lib/train/eval_text.ts";
import { promptCompletionSegments } from "../../lib/data/chat_template.ts";
import { encodeSegments } from "../../lib/data/examples.ts";
import {
  gpt2Config,
  gpt2Weights,
  writeCheckpoint,
  writeGpt2TokenizerFiles,
} from "../hf/fixtures.ts";

/** Σ −log p(target) over windows k = 0 … W−1 of `stream`, in float64 from the f32 logits. */
async function refNats(model: CausalLM, stream: number[], T: number, W: number) {
  let nats = 0;
  for (let k = 0; k < W; k++) {
    const x = Tensor.fromArray(Int32Array.from(stream.slice(k * T, k * T + T)), [1, T], {
      dtype: "i32",
    });
    const logits = Array.from((await model.forward(x).toArray()) as Float32Array);
    const V = logits.length / T;
    for (let t = 0; t < T; t++) {
      const row = logits.slice(t * V, (t + 1) * V);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      nats += lse - row[stream[k * T + t + 1]];
    }
  }
  return nats;
}

function streamOf(tok: Tokenizer, docs: string[]): number[] {
  return docs.flatMap((d) => [...tok.encode(d), tok.eotToken]);
}

const DOCS = [
  "Hello world — Hellö wörld, Hello world!",
  "Ünïcödé: naïve café, 🐋 whale; Hello bb world",
  "Hello world Hello world Hello world and some more plain text to end with, Hello world.",
  "A fourth document that the token limit cuts in the middle of its plain words.",
];

Deno.test("evaluateText (GPT-2 BPE): loss = float64 cross-entropy; bits per byte from the vocabulary's bytes", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = gpt2Config({ n_positions: 32 });
  await writeCheckpoint(dir, cfg, gpt2Weights(cfg, 8, "F32"));
  await writeGpt2TokenizerFiles(dir);
  const { model, tokenizer } = await loadModel(dir, cpu);
  const tok = tokenizer as HfTokenizer;
  const all = streamOf(tok, DOCS);
  const T = 7;
  const doc012 = streamOf(tok, DOCS.slice(0, 3)).length;
  for (const maxTokens of [Infinity, doc012 + 20]) {
    const r = await evaluateText(model, tok, DOCS, { ctx: T, batch: 2, maxTokens });
    const stream = all.slice(0, Math.min(all.length, maxTokens));
    const W = Math.floor((stream.length - 1) / T);
    assert.equal(r.windows, W);
    assert.equal(r.tokens, W * T);
    assert.equal(r.truncated, Number.isFinite(maxTokens));
    const nats = await refNats(model, stream, T, W);
    // Bytes of targets 1 … W·T: a byte-level token string has one character per byte.
    let bytes = 0;
    for (const id of stream.slice(1, W * T + 1)) {
      bytes += id === tok.eotToken ? 1 : [...tok.idToToken(id)!].length;
    }
    console.log(
      `maxTokens ${maxTokens}: loss ${r.loss.toFixed(6)} vs ${(nats / (W * T)).toFixed(6)}, ` +
        `${r.bytes} bytes (ref ${bytes}) for ${r.tokens} tokens, ${r.bitsPerByte.toFixed(4)} ` +
        `bits/byte, ${r.bitsPerToken.toFixed(4)} bits/token`,
    );
    assert.ok(Math.abs(r.nats - nats) <= 1e-5 * nats, `nats ${r.nats} vs ${nats}`);
    assert.equal(r.bytes, bytes);
    assert.ok(bytes > r.tokens, "BPE tokens spell more than one byte each on average");
    const bpb = nats / (Math.LN2 * bytes);
    assert.ok(Math.abs(r.bitsPerByte - bpb) <= 1e-5 * bpb);
    assert.ok(Math.abs(r.perplexity - Math.exp(nats / (W * T))) <= 1e-5 * r.perplexity);
    assert.ok(Math.abs(r.bitsPerToken - r.loss / Math.LN2) <= 1e-12);
  }
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("evaluateText (byte tokenizer): bits per byte = bits per token; the limit cuts the stream", async () => {
  const model = GPT.init(
    { vocab_size: 257, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2 },
    { device: cpu, seed: 2 },
  );
  const tok = new ByteTokenizer();
  const docs = ["naïve café 🐋", "plain", "another one, longer than the others"];
  const r = await evaluateText(model, tok, docs, { ctx: 5, batch: 3, maxTokens: 30 });
  assert.equal(r.streamTokens, 30);
  assert.equal(r.windows, 5);
  assert.equal(r.bytes, r.tokens);
  assert.equal(r.bitsPerByte, r.bitsPerToken);
  const nats = await refNats(model, streamOf(tok, docs).slice(0, 30), 5, 5);
  assert.ok(Math.abs(r.nats - nats) <= 1e-5 * nats);
  await assert.rejects(
    () => evaluateText(model, tok, ["ab"], { ctx: 5, batch: 1 }),
    /the data has 3 tokens, fewer than one window of ctx 5 \+ 1/,
  );
  model.dispose();
});

Deno.test("evaluateExamples: instruction data scores only the masked-in targets, as float64 says", async () => {
  // Each example alone through the model; −log p of the targets the mask keeps, in float64.
  const model = GPT.init(
    { vocab_size: 257, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 },
    { device: cpu, seed: 11 },
  );
  const tok = new ByteTokenizer();
  const examples = [
    { prompt: "Q: 2+2?\nA:", completion: " 4." },
    { prompt: "Say hi:", completion: " hello there, friend" }, // cut at T + 1 = 13 tokens
    { prompt: "x", completion: "yz" },
  ].map((e, i) => encodeSegments(tok, promptCompletionSegments(e.prompt, e.completion), i + 1));
  const T = 12;
  let nats = 0, count = 0;
  for (const e of examples) {
    const n = Math.min(e.ids.length, T + 1);
    const x = Tensor.fromArray(e.ids.slice(0, n - 1), [1, n - 1], { dtype: "i32" });
    const logits = Array.from((await model.forward(x).toArray()) as Float32Array);
    const V = 257;
    for (let i = 1; i < n; i++) {
      if (!e.mask[i]) continue;
      const row = logits.slice((i - 1) * V, i * V);
      const m = Math.max(...row);
      nats += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[e.ids[i]];
      count++;
    }
  }
  // The byte tokenizer: one byte per target, end-of-text included; the cut example trains 2.
  assert.equal(count, 4 + 5 + 3);
  const r = await evaluateExamples(model, tok, examples, { ctx: T, batch: 2 });
  assert.deepEqual([r.tokens, r.bytes, r.windows, r.truncated], [count, count, 3, false]);
  assert.ok(Math.abs(r.nats - nats) <= 1e-5 * nats, `${r.nats} vs ${nats}`);
  assert.ok(Math.abs(r.loss - nats / count) <= 1e-6);
  const first = await evaluateExamples(model, tok, examples, { ctx: T, batch: 2, maxTokens: 5 });
  assert.deepEqual([first.windows, first.truncated], [1, true]);
  model.dispose();
});
