/**
 * Instruction examples as text segments, each marked trained or masked: a model folder's
 * Hugging Face chat template (Jinja, rendered by `@huggingface/jinja` as transformers.js does),
 * or loralab's plain default format for models without one.
 *
 * Where the assistant's tokens are: segments are rendered, then tokenized one by one (see
 * lib/data/examples.ts), so the trained/masked boundary falls exactly between two tokens. With a
 * template, the conversation is rendered prefix by prefix (HF's approach for
 * `return_assistant_tokens_mask` without `{% generation %}` markers): for the assistant message
 * `i`, `render(messages[0..i), add_generation_prompt=true)` ends where the assistant's text
 * starts and `render(messages[0..i])` where it ends; each must be a prefix of the full render,
 * else the template is refused (one line naming the message).
 *
 * @module
 */

import { Template } from "@huggingface/jinja";
import { pathExists, readJsonChecked, readTextChecked } from "../io/read_file.ts";
import type { ChatMessage, InstructExample } from "./instruct.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** A piece of a rendered example. */
export interface Segment {
  /** The text. */
  text: string;
  /** Whether its tokens are training targets (completion / assistant), else masked. */
  train: boolean;
  /** Append the end-of-text token after it (with the same `train`). */
  eos: boolean;
}

/** How conversations become segments. */
export interface ChatFormat {
  /** `"template"`: the model folder's chat template; `"default"`: {@link DEFAULT_CHAT_FORMAT}. */
  kind: "template" | "default";
  /** Where the template came from (a file path), or `"default"`. */
  origin: string;
  /** The conversation as segments; throws a one-line Error when the template fails. */
  segments(messages: readonly ChatMessage[]): Segment[];
}

/** Role headers of {@link DEFAULT_CHAT_FORMAT}. */
const HEADERS: Record<ChatMessage["role"], string> = {
  system: "### System:\n",
  user: "### User:\n",
  assistant: "### Assistant:\n",
};

/**
 * loralab's format for models without a chat template (e.g. the shipped byte-level base model):
 * each message is `### System:\n…`, `### User:\n…` or `### Assistant:\n…`, messages separated by
 * a blank line; the assistant's content is trained and followed by end-of-text:
 *
 * ```
 * ### System:\n{system}\n\n### User:\n{user}\n\n### Assistant:\n{assistant}<EOT>\n\n### User:\n…
 * ```
 *
 * Everything else (headers, user and system text, separators) is masked. To generate, prompt with
 * the conversation so far followed by `### Assistant:\n` and stop at end-of-text.
 */
export const DEFAULT_CHAT_FORMAT: ChatFormat = {
  kind: "default",
  origin: "default",
  segments(messages) {
    const out: Segment[] = [];
    let pending = "";
    for (const [i, m] of messages.entries()) {
      const sep = i > 0 ? "\n\n" : "";
      if (m.role === "assistant") {
        out.push({ text: pending + sep + HEADERS.assistant, train: false, eos: false });
        out.push({ text: m.content, train: true, eos: true });
        pending = "";
      } else {
        pending += sep + HEADERS[m.role] + m.content;
      }
    }
    if (pending !== "") out.push({ text: pending, train: false, eos: false });
    return out.filter((s) => s.text !== "" || s.eos);
  },
};

/** Special-token strings a template may use. */
export interface TemplateTokens {
  /** `bos_token` ("" when the tokenizer has none). */
  bos: string;
  /** `eos_token`. */
  eos: string;
}

/**
 * A {@link ChatFormat} from a Hugging Face chat template (Jinja source). It is rendered with
 * `messages`, `bos_token`, `eos_token` and `add_generation_prompt` (see the module doc for how
 * the assistant spans are found). An assistant span that already contains `eos_token` (as
 * `<|im_end|>` or `<|eot_id|>` templates write it) gets no extra end-of-text token; otherwise one
 * is appended after it. Throws a one-line Error naming `origin` if the template does not parse.
 */
export function templateChatFormat(
  source: string,
  origin: string,
  tokens: TemplateTokens,
): ChatFormat {
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new Error(`${origin}: the chat template does not parse: ${oneLine(e)}`);
  }
  const render = (messages: readonly ChatMessage[], addGenerationPrompt: boolean) => {
    try {
      return template.render({
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        bos_token: tokens.bos,
        eos_token: tokens.eos,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (e) {
      throw new Error(`chat template (${origin}) failed: ${oneLine(e)}`);
    }
  };
  return {
    kind: "template",
    origin,
    segments(messages) {
      const full = render(messages, false);
      const out: Segment[] = [];
      let at = 0;
      for (const [i, m] of messages.entries()) {
        if (m.role !== "assistant") continue;
        const before = render(messages.slice(0, i), true);
        const upTo = render(messages.slice(0, i + 1), false);
        const start = before.length;
        if (!full.startsWith(upTo) || !upTo.startsWith(before) || start < at) {
          throw new Error(
            `chat template (${origin}) is not prefix-stable at message ${i + 1}: rendering the ` +
              `conversation up to it does not give the start of the whole conversation, so the ` +
              `assistant's tokens cannot be located`,
          );
        }
        const span = upTo.slice(start);
        out.push({ text: full.slice(at, start), train: false, eos: false });
        out.push({ text: span, train: true, eos: tokens.eos === "" || !span.includes(tokens.eos) });
        at = upTo.length;
      }
      out.push({ text: full.slice(at), train: false, eos: false });
      return out.filter((s) => s.text !== "" || s.eos);
    },
  };
}

/**
 * Prompt/completion rows: the prompt (masked) then the completion (trained) and end-of-text,
 * concatenated as they are (no template, no separator: put one in the data if you want it).
 */
export function promptCompletionSegments(prompt: string, completion: string): Segment[] {
  return [
    ...(prompt === "" ? [] : [{ text: prompt, train: false, eos: false }]),
    { text: completion, train: true, eos: true },
  ];
}

/** The segments of any instruction example. */
export function exampleSegments(e: InstructExample, chat: ChatFormat): Segment[] {
  return e.format === "prompt-completion"
    ? promptCompletionSegments(e.prompt, e.completion)
    : chat.segments(e.messages);
}

/**
 * The chat format of a model folder: `chat_template.jinja` if present, else
 * `tokenizer_config.json`'s `chat_template` (a string, or a list of `{name, template}` of which
 * `"default"` or else the first is used), else {@link DEFAULT_CHAT_FORMAT}. `bos_token` and
 * `eos_token` come from `tokenizer_config.json` (strings or `{content}` objects); without them,
 * `bos_token` is `""` and `eos_token` the text of the tokenizer's end-of-text token.
 */
export async function loadChatFormat(dir: string, tok: Tokenizer): Promise<ChatFormat> {
  const cfgPath = `${dir}/tokenizer_config.json`;
  const cfg = await pathExists(cfgPath)
    ? (await readJsonChecked(cfgPath)) as Record<string, unknown> | null
    : null;
  const jinjaPath = `${dir}/chat_template.jinja`;
  let source: string | null = null, origin = "";
  if (await pathExists(jinjaPath)) {
    source = await readTextChecked(jinjaPath, 1 << 20);
    origin = jinjaPath;
  } else if (cfg && cfg.chat_template !== undefined && cfg.chat_template !== null) {
    source = pickTemplate(cfg.chat_template, cfgPath);
    origin = cfgPath;
  }
  if (source === null) return DEFAULT_CHAT_FORMAT;
  const bos = tokenText(cfg?.bos_token, `${cfgPath}: bos_token`) ?? "";
  const eos = tokenText(cfg?.eos_token, `${cfgPath}: eos_token`) ??
    tok.decode([tok.eotToken]);
  return templateChatFormat(source, origin, { bos, eos });
}

function pickTemplate(v: unknown, where: string): string {
  if (typeof v === "string") return v;
  if (Array.isArray(v) && v.length > 0) {
    const named = v.find((t) => t?.name === "default") ?? v[0];
    if (typeof named?.template === "string") return named.template;
  }
  throw new Error(`${where}: chat_template must be a string or a list of {name, template}`);
}

function tokenText(v: unknown, where: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  const c = (v as Record<string, unknown>)?.content;
  if (typeof c === "string") return c;
  throw new Error(`${where} must be a string or {"content": string}`);
}

function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\n\s*/g, " ").trim();
}
