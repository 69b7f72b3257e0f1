/**
 * Built-in chat templates, for tokenizers that ship without one.
 *
 * Each constant is the Jinja source a Hugging Face `tokenizer_config.json` would hold, so
 * `tokenizer.chatTemplate = CHATML_TEMPLATE` renders exactly as `transformers` would.
 * @module
 */

/**
 * Plain ChatML, with no default system prompt:
 * `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`
 * when `add_generation_prompt` is set.
 *
 * Source: the "chatml" example of the transformers chat-templating guide (also the
 * `default_chat_template` that `PreTrainedTokenizerBase` used before v4.43), whitespace as there.
 */
export const CHATML_TEMPLATE =
  "{% for message in messages %}" +
  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * ChatML as SmolLM2-Instruct (HuggingFaceTB/SmolLM2-135M-Instruct) uses it: like
 * {@link CHATML_TEMPLATE}, but a conversation that does not start with a system message gets
 * the default system turn `You are a helpful AI assistant named SmolLM, trained by Hugging Face`.
 *
 * Source: `chat_template` of HuggingFaceTB/SmolLM2-135M-Instruct's `tokenizer_config.json`
 * (the SmolLM2 tokenizer in `../shared` came without that file).
 */
export const SMOLLM2_CHAT_TEMPLATE =
  "{% for message in messages %}" +
  "{% if loop.first and messages[0]['role'] != 'system' %}" +
  "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}" +
  "{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * Mistral `[INST]` format as in Mistral-7B-Instruct-v0.1/v0.2 (the original template, before
 * Mistral's 2024 rewrite that adds system-message support and extra spaces):
 * `<s>[INST] {user} [/INST]{assistant}</s>[INST] {user} [/INST]`.
 *
 * - Roles must alternate user/assistant starting with user; anything else raises.
 * - No system role, and no `add_generation_prompt` effect: the prompt already ends in `[/INST]`.
 * - The template writes `bos_token` itself, so tokenize the result without special tokens.
 *
 * Source: `chat_template` of mistralai/Mistral-7B-Instruct-v0.2's `tokenizer_config.json`
 * (first published version), verbatim. Use it with the Llama-2/Mistral 32k vocabulary.
 */
export const MISTRAL_INST_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}" +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}" +
  "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}" +
  "{% endfor %}";
