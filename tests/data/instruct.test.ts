/**
 * Instruction data: .jsonl rows (prompt/completion, chat), their errors with file:line, chat
 * rendering (loralab's default format and a real ChatML Jinja template), and the training mask
 * against hand-computed positions with the byte tokenizer (one token per ASCII character).
 */

import assert from "node:assert/strict";
import {
  ByteTokenizer,
  DEFAULT_CHAT_FORMAT,
  encodeExamples,
  encodeSegments,
  type InstructExample,
  loadChatFormat,
  loadTextSource,
  promptCompletionSegments,
  sha256Hex,
  templateChatFormat,
} from "../../lib/data/mod.ts";

const tok = new ByteTokenizer();
const EOT = tok.eotToken;
const bytes = (s: string) => Array.from(new TextEncoder().encode(s));

/** A ChatML template as Qwen and others ship it (HF Jinja syntax). */
const CHATML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + " +
  "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}" +
  "{{ '<|im_start|>assistant\\n' }}{% endif %}";

async function withFiles(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "loralab-instruct-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const rows = (...r: unknown[]) =>
  r.map((x) => (typeof x === "string" ? x : JSON.stringify(x))).join("\n");

Deno.test("instruction .jsonl: prompt/completion and chat rows, format from the first row", async () => {
  await withFiles({
    "pc.jsonl": rows({ prompt: "Q: 2+2?\nA:", completion: " 4", id: 7 }, "", {
      prompt: "",
      completion: "",
    }),
    "chat.jsonl": rows({
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
      ],
    }, { messages: [{ role: "user", content: "" }, { role: "assistant", content: "ok" }] }),
  }, async (dir) => {
    const pc = await loadTextSource(`${dir}/pc.jsonl`);
    assert.equal(pc.format, "prompt-completion");
    assert.equal(pc.kind, "jsonl");
    assert.deepEqual(pc.labels, ["line 1", "line 3"]);
    assert.deepEqual(pc.examples, [
      { format: "prompt-completion", prompt: "Q: 2+2?\nA:", completion: " 4", line: 1 },
      { format: "prompt-completion", prompt: "", completion: "", line: 3 },
    ]);
    // Documents are the rows' training fields as canonical JSON (extra fields such as "id" dropped).
    assert.deepEqual(pc.documents, [
      '{"prompt":"Q: 2+2?\\nA:","completion":" 4"}',
      '{"prompt":"","completion":""}',
    ]);
    assert.equal(pc.sha256, await sha256Hex(JSON.stringify(pc.documents)));
    const chat = await loadTextSource(`${dir}/chat.jsonl`);
    assert.equal(chat.format, "chat");
    assert.equal(chat.examples!.length, 2);
    const first = chat.examples![0] as Extract<InstructExample, { format: "chat" }>;
    assert.deepEqual(first.messages.map((m) => m.role), ["system", "user", "assistant"]);
  });
});

Deno.test("instruction .jsonl: bad rows are one-line errors naming file:line", async () => {
  const pc = { prompt: "p", completion: "c" };
  const chat = (...m: [string, unknown][]) => ({
    messages: m.map(([role, content]) => ({ role, content })),
  });
  const cases: [string, RegExp][] = [
    [
      rows(pc, { prompt: "p" }),
      /a\.jsonl:2: expected string fields "prompt" and "completion" .*"completion" is no such field/,
    ],
    [rows(pc, { prompt: 3, completion: "c" }), /a\.jsonl:2: .*"prompt" is number/],
    [rows(pc, { text: "t" }), /a\.jsonl:2: expected string fields "prompt"/],
    [rows({ text: "t" }, pc), /a\.jsonl:2: expected a string field "text", got no such field/],
    [
      rows(chat(["user", "u"], ["assistant", "a"]), pc),
      /a\.jsonl:2: expected "messages": .* got no such field/,
    ],
    [
      rows(chat(["user", "u"], ["bot", "a"])),
      /a\.jsonl:1: message 2 has unknown role "bot" \(expected system, user, assistant\)/,
    ],
    [
      rows("", chat(["user", "u"], ["assistant", 5])),
      /a\.jsonl:2: message 2 \(assistant\) has no string "content" \(number\)/,
    ],
    [
      rows(chat(["user", "u"], ["system", "s"], ["assistant", "a"])),
      /a\.jsonl:1: message 2 is a system message; only the first may be/,
    ],
    [
      rows(chat(["system", "s"], ["user", "u"])),
      /a\.jsonl:1: the conversation has no assistant message/,
    ],
    [rows({ messages: "hi" }), /a\.jsonl:1: expected "messages": .*got string/],
    [rows({ messages: [null] }), /a\.jsonl:1: message 1 is not an object/],
  ];
  for (const [text, re] of cases) {
    await withFiles({ "a.jsonl": text }, async (dir) => {
      const err = await loadTextSource(`${dir}/a.jsonl`).then(() => null, (e) => e as Error);
      assert.ok(err, `no error for ${text}`);
      assert.match(err.message, re);
      assert.ok(!err.message.includes("\n"), `one line: ${err.message}`);
    });
  }
});

Deno.test("default chat format and prompt/completion: segments and masks by hand", () => {
  // prompt/completion: prompt masked, completion + EOT trained, concatenated as they are.
  const pc = encodeSegments(tok, promptCompletionSegments("Q:", "AB"), 1);
  assert.deepEqual(Array.from(pc.ids), [...bytes("Q:AB"), EOT]);
  assert.deepEqual(Array.from(pc.mask), [0, 0, 1, 1, 1]);
  assert.equal(pc.promptLength, 2);
  // --train-on-prompt: everything but the first token.
  const all = encodeSegments(tok, promptCompletionSegments("Q:", "AB"), 1, { trainOnPrompt: true });
  assert.deepEqual(Array.from(all.mask), [0, 1, 1, 1, 1]);
  // An empty completion trains the end-of-text token alone.
  const stop = encodeSegments(tok, promptCompletionSegments("Q", ""), 1);
  assert.deepEqual(Array.from(stop.ids), [...bytes("Q"), EOT]);
  assert.deepEqual(Array.from(stop.mask), [0, 1]);

  const segs = DEFAULT_CHAT_FORMAT.segments([
    { role: "system", content: "S" },
    { role: "user", content: "U" },
    { role: "assistant", content: "A" },
    { role: "user", content: "V" },
    { role: "assistant", content: "BC" },
  ]);
  assert.deepEqual(segs, [
    { text: "### System:\nS\n\n### User:\nU\n\n### Assistant:\n", train: false, eos: false },
    { text: "A", train: true, eos: true },
    { text: "\n\n### User:\nV\n\n### Assistant:\n", train: false, eos: false },
    { text: "BC", train: true, eos: true },
  ]);
  const e = encodeSegments(tok, segs, 1);
  const p1 = bytes(segs[0].text).length, p2 = bytes(segs[2].text).length;
  const want = [
    ...new Array(p1).fill(0),
    1,
    1, // "A", EOT
    ...new Array(p2).fill(0),
    1,
    1,
    1, // "B", "C", EOT
  ];
  assert.deepEqual(Array.from(e.mask), want);
  assert.equal(e.ids[p1], "A".charCodeAt(0));
  assert.equal(e.ids[p1 + 1], EOT);
  assert.equal(e.promptLength, p1);
});

Deno.test("ChatML Jinja template: assistant spans by prefix rendering, EOS only when missing", () => {
  const msgs = [
    { role: "user" as const, content: "hi" },
    { role: "assistant" as const, content: "yo" },
    { role: "user" as const, content: "q" },
    { role: "assistant" as const, content: "a" },
  ];
  const withEos = templateChatFormat(CHATML, "t.json", { bos: "", eos: "<|im_end|>" });
  assert.equal(withEos.kind, "template");
  const segs = withEos.segments(msgs);
  assert.deepEqual(segs, [
    { text: "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", train: false, eos: false },
    { text: "yo<|im_end|>\n", train: true, eos: false },
    { text: "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n", train: false, eos: false },
    { text: "a<|im_end|>\n", train: true, eos: false },
  ]);
  // The segments put together are the template's own rendering.
  assert.equal(
    segs.map((s) => s.text).join(""),
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n",
  );
  // An eos_token the template never writes is appended after each assistant span.
  const other = templateChatFormat(CHATML, "t.json", { bos: "", eos: "<|endoftext|>" });
  assert.deepEqual(other.segments(msgs).map((s) => s.eos), [false, true, false, true]);
  // Masks with the byte tokenizer: 12 + 5 + 2 + 10 + 1 + 22 = 52 masked, then "yo<|im_end|>\n" + EOT = 14 trained, ...
  const e = encodeSegments(tok, other.segments(msgs), 1);
  const m1 = bytes(segs[0].text).length, t1 = bytes(segs[1].text).length + 1;
  const m2 = bytes(segs[2].text).length, t2 = bytes(segs[3].text).length + 1;
  assert.deepEqual([m1, t1, m2, t2], [52, 14, 51, 13]);
  assert.deepEqual(Array.from(e.mask), [
    ...new Array(m1).fill(0),
    ...new Array(t1).fill(1),
    ...new Array(m2).fill(0),
    ...new Array(t2).fill(1),
  ]);
  assert.equal(e.ids[m1 + t1 - 1], EOT);
  assert.equal(e.ids.length, m1 + t1 + m2 + t2);

  // A system message and bos_token go through the template's own text.
  const bosT = templateChatFormat("{{ bos_token }}" + CHATML, "t.json", {
    bos: "<s>",
    eos: "<|im_end|>",
  });
  const s2 = bosT.segments([{ role: "system", content: "S" }, ...msgs.slice(0, 2)]);
  assert.equal(
    s2[0].text,
    "<s><|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  );
});

Deno.test("chat templates: render, parse and prefix errors name file:line and the template", () => {
  const ex: InstructExample[] = [{
    format: "chat",
    messages: [{ role: "user", content: "u" }, { role: "assistant", content: "a" }],
    line: 7,
  }];
  const raising = templateChatFormat(
    "{% if messages[0]['role'] != 'system' %}{{ raise_exception('Conversations must start with a system message') }}{% endif %}",
    "m/tokenizer_config.json",
    { bos: "", eos: "</s>" },
  );
  assert.throws(
    () => encodeExamples(tok, ex, raising, "d.jsonl"),
    /^Error: d\.jsonl:7: chat template \(m\/tokenizer_config\.json\) failed: .*Conversations must start with a system message$/,
  );
  assert.throws(
    () => templateChatFormat("{% for %}", "m/chat_template.jinja", { bos: "", eos: "" }),
    /m\/chat_template\.jinja: the chat template does not parse/,
  );
  const unstable = templateChatFormat("{{ messages|length }}" + CHATML, "x", { bos: "", eos: "" });
  assert.throws(
    () => encodeExamples(tok, ex, unstable, "d.jsonl"),
    /d\.jsonl:7: chat template \(x\) is not prefix-stable at message 2/,
  );
});

Deno.test("loadChatFormat: tokenizer_config.json chat_template, chat_template.jinja, or the default", async () => {
  await withFiles({}, async (dir) => {
    assert.equal((await loadChatFormat(dir, tok)).kind, "default");
    await Deno.writeTextFile(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({
        chat_template: "{{ bos_token }}" + CHATML,
        bos_token: { content: "<s>" },
        eos_token: "<|im_end|>",
      }),
    );
    const f = await loadChatFormat(dir, tok);
    assert.equal(f.kind, "template");
    assert.equal(f.origin, `${dir}/tokenizer_config.json`);
    const s = f.segments([{ role: "user", content: "u" }, { role: "assistant", content: "a" }]);
    assert.equal(s[0].text.slice(0, 3), "<s>");
    assert.deepEqual(s[1], { text: "a<|im_end|>\n", train: true, eos: false });
    await Deno.writeTextFile(`${dir}/chat_template.jinja`, "{{ eos_token }}" + CHATML);
    const j = await loadChatFormat(dir, tok);
    assert.equal(j.origin, `${dir}/chat_template.jinja`);
    assert.equal(
      j.segments([{ role: "user", content: "u" }, { role: "assistant", content: "a" }])[0].text
        .slice(0, 10),
      "<|im_end|>",
    );
  });
});
