/**
 * Chat-template rendering on `@huggingface/jinja`, with transformers' `apply_chat_template`
 * variables and its `continue_final_message` trimming.
 * @module
 */
import { Template } from "@huggingface/jinja";
import { type ChatMessage, type ChatTemplateOptions, ConfigError } from "@prefkit/core";

/**
 * A chat message as a template sees it: core's `ChatMessage` plus the optional fields some
 * templates read. Fields present at run time are passed through whatever their name.
 */
export interface TemplateMessage extends ChatMessage {
  /** Tool calls of an assistant turn (Qwen, Llama 3.1 templates). */
  tool_calls?: unknown[];
  /** Reasoning text of an assistant turn (Qwen3 renders it inside `<think>`). */
  reasoning_content?: string;
  /** Name of a tool or speaker. */
  name?: string;
  /** Id of the tool call a `tool` message answers. */
  tool_call_id?: string;
}

/** Options of `PreTrainedTokenizer.applyChatTemplate`. Unknown keys are passed to the template as variables. */
export interface ApplyChatTemplateOptions extends ChatTemplateOptions {
  /** Append the header that opens an assistant turn (HF `add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /**
   * Leave the final (assistant) message open: cut the rendering right after its content, so a
   * model continues it (HF `continue_final_message`). Excludes `addGenerationPrompt`.
   */
  continueFinalMessage?: boolean;
  /** Return token ids instead of the string. Ids are encoded WITHOUT adding special tokens again. */
  tokenize?: boolean;
  /** Tool (function) schemas, passed as the template's `tools`. */
  tools?: unknown[];
  /** Retrieval documents, passed as the template's `documents`. */
  documents?: unknown[];
  /** Jinja source to use instead of the tokenizer's own, or the name of one of its named templates. */
  chatTemplate?: string;
}

/** Variables every render gets besides the caller's kwargs. */
export interface ChatTemplateContext {
  /** Rendered where a template writes `{{ bos_token }}`. */
  bos_token?: string;
  /** Rendered where a template writes `{{ eos_token }}`. */
  eos_token?: string;
  /** Rendered where a template writes `{{ pad_token }}`. */
  pad_token?: string;
  /** Rendered where a template writes `{{ unk_token }}`. */
  unk_token?: string;
}

const OPTION_KEYS = new Set([
  "addGenerationPrompt",
  "continueFinalMessage",
  "tokenize",
  "tools",
  "documents",
  "chatTemplate",
]);
const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (err) {
      throw new ConfigError(
        `chat template does not parse: ${(err as Error).message}`,
        { field: "chat_template" },
        { cause: err },
      );
    }
    compiled.set(source, t);
  }
  return t;
}

/**
 * Render `messages` with the Jinja `template`, as transformers' `apply_chat_template(tokenize=False)`.
 *
 * The template sees `messages`, `add_generation_prompt`, `tools`, `documents`, the special-token
 * strings in `context` (`bos_token`, ...) and every option that is not one of
 * {@link ApplyChatTemplateOptions}' own keys (e.g. `enable_thinking: false`), unchanged.
 *
 * @throws ConfigError when the template does not parse, raises (`raise_exception`), or
 * `continueFinalMessage` cannot find the final message in the output.
 */
export function renderChatTemplate(
  template: string,
  messages: readonly TemplateMessage[],
  options: ApplyChatTemplateOptions = {},
  context: ChatTemplateContext = {},
): string {
  const { addGenerationPrompt = false, continueFinalMessage = false } = options;
  if (addGenerationPrompt && continueFinalMessage) {
    throw new ConfigError("addGenerationPrompt and continueFinalMessage cannot both be set", {
      field: "continueFinalMessage",
    });
  }
  const kwargs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) if (!OPTION_KEYS.has(k)) kwargs[k] = v;
  const variables: Record<string, unknown> = {
    ...context,
    ...kwargs,
    messages,
    add_generation_prompt: addGenerationPrompt,
  };
  if (options.tools !== undefined) variables["tools"] = options.tools;
  if (options.documents !== undefined) variables["documents"] = options.documents;
  let rendered: string;
  try {
    rendered = compile(template).render(variables);
  } catch (err) {
    throw new ConfigError(
      `chat template failed: ${(err as Error).message}`,
      { field: "chat_template" },
      { cause: err },
    );
  }
  return continueFinalMessage ? cutAfterFinalMessage(rendered, messages) : rendered;
}

/** transformers' `continue_final_message` trimming: end the text right after the last message's content. */
function cutAfterFinalMessage(rendered: string, messages: readonly TemplateMessage[]): string {
  const final = messages.at(-1)?.content;
  if (typeof final !== "string") {
    throw new ConfigError("continueFinalMessage needs a final message with string content", {
      field: "continueFinalMessage",
    });
  }
  const at = rendered.lastIndexOf(final.trim());
  if (at < 0) {
    throw new ConfigError("continueFinalMessage is set but the final message does not appear in the rendered chat", {
      field: "continueFinalMessage",
    });
  }
  const lstripped = final.trimStart();
  // Keep trailing spaces of the message only if the template kept them too.
  const end = rendered.slice(at, at + lstripped.length) === final ? lstripped.length : final.trim().length;
  return rendered.slice(0, at + end);
}

/**
 * The templates a `chat_template` field holds: a string becomes `{default: string}`, a list of
 * `{name, template}` becomes a name→source map. Anything else gives `{}`.
 * @throws ConfigError when a list entry has no string `name`/`template`.
 */
export function chatTemplatesFromField(value: unknown, file?: string): Record<string, string> {
  if (typeof value === "string") return { default: value };
  if (!Array.isArray(value)) return {};
  const out: Record<string, string> = {};
  value.forEach((entry, i) => {
    const { name, template } = (entry ?? {}) as { name?: unknown; template?: unknown };
    if (typeof name !== "string" || typeof template !== "string") {
      throw new ConfigError("each entry needs string `name` and `template`", { file, field: `chat_template[${i}]` });
    }
    out[name] = template;
  });
  return out;
}

/**
 * The default template among `templates`: `explicit` when given, else the one named `default`,
 * else the only one there is.
 */
export function defaultChatTemplate(templates: Record<string, string>, explicit?: string): string | undefined {
  const chosen = explicit ?? templates["default"];
  if (chosen !== undefined) return chosen;
  const names = Object.keys(templates);
  return names.length === 1 ? templates[names[0]!] : undefined;
}

/**
 * The template one render uses: `options.chatTemplate` (a name in `templates` or Jinja source), else
 * the `tool_use` template when `tools` are given and one exists, else `defaultTemplate`.
 * @throws ConfigError naming `source` when there is none.
 */
export function pickChatTemplate(
  templates: Record<string, string>,
  defaultTemplate: string | undefined,
  options: ApplyChatTemplateOptions,
  source: string | undefined,
): string {
  const requested = options.chatTemplate;
  if (requested !== undefined) return templates[requested] ?? requested;
  if (options.tools !== undefined && templates["tool_use"] !== undefined) return templates["tool_use"];
  if (defaultTemplate !== undefined) return defaultTemplate;
  const names = Object.keys(templates);
  const hint = names.length > 1 ? ` It has named templates ${names.join(", ")} but none called "default";` : "";
  throw new ConfigError(
    `this tokenizer has no chat template.${hint} Pass options.chatTemplate or set tokenizer.chatTemplate ` +
      "(e.g. CHATML_TEMPLATE or MISTRAL_INST_TEMPLATE), or add chat_template.jinja next to tokenizer.json",
    { file: source, field: "chat_template" },
  );
}
