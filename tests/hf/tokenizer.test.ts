import assert from "node:assert/strict";
import {
  HfTokenizer,
  loadHfTokenizer,
  tokenizerFromJSON,
  type TokenizerJSON,
} from "../../lib/mod.ts";
import { loadFolderTokenizer } from "../../lib/io/mod.ts";
import { GPT2_MERGES, gpt2Vocab, llamaTokenizerJson, writeGpt2TokenizerFiles } from "./fixtures.ts";

// Expected ids are derived by hand from the mini vocabularies in fixtures.ts. Byte tokens carry
// GPT-2's real ids ("!" 0, "H" 39, "h" 71, "e" 68, "o" 78, "a" 64, "Ġ" (space) 220), merges are
// 256… in rank order, <|endoftext|> 267.
Deno.test("GPT-2 BPE from vocab.json + merges.txt: hand-derived ids, regex pre-split, round trip", async () => {
  const dir = await Deno.makeTempDir();
  await writeGpt2TokenizerFiles(dir);
  const tok = await loadHfTokenizer(dir);
  assert.equal(tok.vocabSize, 268);
  assert.equal(tok.eotToken, 267);
  // "Hello" merges H e → He (256), l l → ll (257), He ll → Hell (258), Hell o → Hello (259);
  // " world" is its own pre-token: Ġ w → Ġw (260), o r (261), Ġw or (262), Ġwor l (263),
  // Ġworl d → Ġworld (264).
  assert.deepEqual(tok.encode("Hello world"), [259, 264]);
  assert.deepEqual(tok.encode("Hello!"), [259, 0]);
  // Lower-case h has no "h e" merge: h, e, ll, o.
  assert.deepEqual(tok.encode("hello"), [71, 68, 257, 78]);
  // GPT-2's regex splits "a  b" into "a", " ", " b" (\s+(?!\S)), so the rank-9 merge "Ġ Ġ"
  // never sees two spaces together and "Ġ b" (266) applies: [a, Ġ, Ġb].
  assert.deepEqual(tok.encode("a  b"), [64, 220, 266]);
  // Non-ASCII text goes through its UTF-8 bytes: é = C3 A9. Byte 0xC3 is in the 174..255 run
  // of printable bytes: id 94 + 12 + (0xC3 - 174) = 127 ("Ã"); 0xA9 is in 161..172: id 94 + 8
  // = 102 ("©").
  assert.deepEqual(tok.encode("é"), [127, 102]);
  assert.equal(tok.idToToken(127), "Ã");
  for (const s of ["Hello world", "a  b\n\tc", "héllo, wörld! 123 it's", ""]) {
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  assert.equal(tok.decode([259, 267, 264]), "Hello<|endoftext|> world");
  assert.throws(() => tok.decode([268]), /id 268 at position 0 is out of range \[0, 268\)/);
  assert.throws(() => tok.decode([1.5]), /out of range/);
  // The JSON form rebuilds the same tokenizer.
  const again = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())) as TokenizerJSON);
  assert.deepEqual(again.encode("Hello world"), [259, 264]);
  assert.equal(again.eotToken, 267);
  // GPT2_MERGES has no duplicates and every merge yields a vocab entry.
  assert.equal(new Set(GPT2_MERGES).size, GPT2_MERGES.length);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Llama tokenizer.json (SentencePiece BPE, ▁, byte fallback): hand-derived ids", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(llamaTokenizerJson()));
  await Deno.writeTextFile(
    `${dir}/tokenizer_config.json`,
    JSON.stringify({ add_bos_token: true, bos_token: "<s>", eos_token: "</s>" }),
  );
  const tok = await loadHfTokenizer(dir, 2);
  assert.equal(tok.eotToken, 2);
  assert.equal(tok.vocabSize, 267);
  // "the hat" → normalized "▁the▁hat" (one word): ▁ t → ▁t (rank 0), h e → he (1),
  // ▁t he → ▁the (2); "▁hat" has no merges: ▁ h a t. No BOS (add_special_tokens false).
  assert.deepEqual(tok.encode("the hat"), [266, 259, 261, 263, 260]);
  // é is not in the vocabulary: byte fallback to <0xC3> <0xA9> = 3 + 0xC3, 3 + 0xA9.
  assert.deepEqual(tok.encode("thé"), [264, 261, 3 + 0xc3, 3 + 0xa9]);
  assert.equal(tok.decode([264, 261, 3 + 0xc3, 3 + 0xa9]), "thé");
  assert.equal(tok.decode(tok.encode("the hat")), "the hat");
  assert.equal(tok.decode([266, 2]), "the</s>");
  // Without an eos id, </s> is found by name.
  assert.equal(new HfTokenizer(llamaTokenizerJson() as never).eotToken, 2);
  // loadFolderTokenizer picks Hugging Face's format by the absence of loralab's "type".
  assert.ok(await loadFolderTokenizer(dir) instanceof HfTokenizer);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("HF tokenizer files: clear errors", async () => {
  const dir = await Deno.makeTempDir();
  await assert.rejects(() => loadHfTokenizer(dir), /has no tokenizer: expected tokenizer.json/);
  await Deno.writeTextFile(`${dir}/tokenizer.json`, "{not json");
  await assert.rejects(() => loadHfTokenizer(dir), /tokenizer.json is not valid JSON/);
  await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify({ version: "1.0" }));
  await assert.rejects(() => loadHfTokenizer(dir), /not a Hugging Face tokenizer/);
  const noEot = llamaTokenizerJson() as { model: { vocab: Record<string, number> } };
  delete noEot.model.vocab["</s>"];
  (noEot as unknown as { added_tokens: unknown[] }).added_tokens = [];
  assert.throws(() => new HfTokenizer(noEot as never), /no end-of-text token/);
  assert.throws(
    () => HfTokenizer.fromVocabMerges(gpt2Vocab(), "#version: 0.2\na b c\n"),
    /merges.txt line 1 is not "a b"/,
  );
  await Deno.remove(dir, { recursive: true });
});
