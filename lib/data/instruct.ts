/**
 * Instruction and chat rows of a `.jsonl` file: `{"prompt": str, "completion": str}` or
 * `{"messages": [{"role": "system" | "user" | "assistant", "content": str}, ...]}`, checked
 * one row at a time with errors that name the file and line.
 *
 * @module
 */

/** What the rows of a `.jsonl` file hold; one format per file. */
export type JsonlFormat = "text" | "prompt-completion" | "chat";

/** Roles a chat message may have. */
export const CHAT_ROLES = ["system", "user", "assistant"] as const;

/** A chat role. */
export type ChatRole = typeof CHAT_ROLES[number];

/** One message of a conversation. */
export interface ChatMessage {
  /** Who speaks. */
  role: ChatRole;
  /** What is said (may be empty). */
  content: string;
}

/** A prompt and the completion to learn. */
export interface PromptCompletion {
  /** Always `"prompt-completion"`. */
  format: "prompt-completion";
  /** The prompt (masked from the loss unless `--train-on-prompt`). */
  prompt: string;
  /** The completion (trained on), followed by end-of-text when encoded. */
  completion: string;
  /** 1-based line of the file it came from. */
  line: number;
}

/** A conversation: an optional leading system message, then user and assistant turns. */
export interface Conversation {
  /** Always `"chat"`. */
  format: "chat";
  /** The messages, in order; at least one is the assistant's. */
  messages: ChatMessage[];
  /** 1-based line of the file it came from. */
  line: number;
}

/** One instruction example. */
export type InstructExample = PromptCompletion | Conversation;

/**
 * The format a row announces: `"chat"` if it has `messages`, else `"prompt-completion"` if it has
 * `prompt` or `completion`, else `"text"`. The first row of a file decides for the whole file.
 */
export function rowFormat(row: Record<string, unknown>): JsonlFormat {
  if ("messages" in row) return "chat";
  if ("prompt" in row || "completion" in row) return "prompt-completion";
  return "text";
}

/**
 * Checks one parsed row of an instruction file (`where` is `file:line`, `line` the line number)
 * and returns it as an example. Empty strings are allowed: an empty prompt trains an
 * unconditioned completion, an empty completion or assistant message trains only the
 * end-of-text token (when to stop). Other fields of the row are ignored. Throws one line naming
 * `where` and the problem: a missing or non-string field, an unknown role (quoted), a system
 * message that is not first, or a conversation without an assistant message (nothing to learn).
 */
export function parseInstructRow(
  row: Record<string, unknown>,
  format: "prompt-completion" | "chat",
  where: string,
  line: number,
): InstructExample {
  if (format === "prompt-completion") {
    for (const f of ["prompt", "completion"]) {
      if (typeof row[f] !== "string") {
        throw new Error(
          `${where}: expected string fields "prompt" and "completion" (the file's first row is ` +
            `prompt/completion), "${f}" is ${describe(row[f])}`,
        );
      }
    }
    return {
      format,
      prompt: row.prompt as string,
      completion: row.completion as string,
      line,
    };
  }
  const msgs = row.messages;
  if (!Array.isArray(msgs)) {
    throw new Error(
      `${where}: expected "messages": [{"role": ..., "content": ...}, ...] (the file's first row ` +
        `is a chat), got ${describe(msgs)}`,
    );
  }
  const messages: ChatMessage[] = [];
  for (const [i, m] of msgs.entries()) {
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      throw new Error(`${where}: message ${i + 1} is not an object {"role", "content"}`);
    }
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string") {
      throw new Error(`${where}: message ${i + 1} has no string "role" (${describe(role)})`);
    }
    if (!(CHAT_ROLES as readonly string[]).includes(role)) {
      throw new Error(
        `${where}: message ${i + 1} has unknown role ${JSON.stringify(role)} ` +
          `(expected ${CHAT_ROLES.join(", ")})`,
      );
    }
    if (typeof content !== "string") {
      throw new Error(
        `${where}: message ${i + 1} (${role}) has no string "content" (${describe(content)})`,
      );
    }
    if (role === "system" && i > 0) {
      throw new Error(`${where}: message ${i + 1} is a system message; only the first may be`);
    }
    messages.push({ role: role as ChatRole, content });
  }
  if (!messages.some((m) => m.role === "assistant")) {
    throw new Error(`${where}: the conversation has no assistant message (nothing to train on)`);
  }
  return { format, messages, line };
}

/** The row as canonical JSON (only the fields that train; for digests and splits). */
export function exampleJson(e: InstructExample): string {
  return e.format === "prompt-completion"
    ? JSON.stringify({ prompt: e.prompt, completion: e.completion })
    : JSON.stringify({ messages: e.messages.map((m) => ({ role: m.role, content: m.content })) });
}

/** How a missing or mistyped field reads in messages. */
export function describe(v: unknown): string {
  return v === undefined
    ? "no such field"
    : v === null
    ? "null"
    : Array.isArray(v)
    ? "an array"
    : typeof v;
}
