"""Tokenise conversations through the model's chat template and mark which tokens are trained on.

The studio owns label masking rather than relying on `{% generation %}` markers, which most real chat
templates lack. A conversation is rendered turn by turn; each assistant turn's text (its content and the
end-of-turn marker the template puts after it) is a trained span, everything else (system, user, tool,
the assistant header) is masked with -100. Options: `train_on_prompt` trains on every token,
`mask_history` trains only on the last assistant turn, and a message with `"weight": 0` (OpenAI
fine-tuning files) is not trained on. Token offsets from a fast tokenizer map spans to tokens.

The trainer (studio/data/prepare.py), the token report and the loss-mask view all call `tokenize_conversations`,
so what the Data tab shows is what the model is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.data.tool_calls import template_messages

IGNORE_INDEX = -100
ENCODE_BATCH = 1024


class TemplateError(ValueError):
    """The tokenizer or chat template cannot be used to build trained spans; says what to change."""


@dataclass
class TokenizedConversation:
    input_ids: list[int]
    labels: list[int]
    text: str = ""  # the rendered conversation (kept only when asked for)
    offsets: list[tuple[int, int]] = field(default_factory=list)  # each token's characters in `text` (when kept)


def _render(tokenizer, messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list | None = None) -> str:
    plain, tools = template_messages(tokenizer, messages, tools)
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         **({"tools": tools} if tools else {}))


def check_tokenizer(tokenizer) -> None:
    """Raise TemplateError when `tokenizer` cannot mark trained tokens (no fast version or no chat template)."""
    if not getattr(tokenizer, "is_fast", False):
        raise TemplateError("this model's tokenizer has no fast (Rust) version, which marking trained tokens needs")
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("this model's tokenizer has no chat template; choose an instruct/chat model")


def assistant_spans(tokenizer, messages: list[dict[str, Any]], mask_history: bool = False,
                    tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the (start, end) character spans of the assistant turns trained on: all of
    them, or only the last with `mask_history`; a turn with weight 0 is never trained on."""
    full = _render(tokenizer, messages, add_generation_prompt=False, tools=tools)
    trained = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1) != 0]
    if mask_history:
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        trained = [i for i in trained if i == last]
    spans = []
    for index in trained:
        before = _render(tokenizer, messages[:index], add_generation_prompt=True, tools=tools) if index else ""
        through = _render(tokenizer, messages[: index + 1], add_generation_prompt=False, tools=tools)
        if not full.startswith(before) or not full.startswith(through) or len(through) < len(before):
            raise TemplateError(
                "the chat template does not render conversations turn by turn (an earlier turn changes when a "
                "later one is added), so trained tokens cannot be marked; choose a model with a standard template"
            )
        spans.append((len(before), len(through)))
    return full, spans


def _labels(input_ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    labels = []
    span_index = 0
    for token_id, (start, _end) in zip(input_ids, offsets):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        inside = span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1]
        labels.append(token_id if inside else IGNORE_INDEX)
    return labels


def tokenize_conversations(tokenizer, conversations: list[list[dict[str, Any]]], train_on_prompt: bool = False,
                           mask_history: bool = False, tools: list[list | None] | None = None,
                           keep_text: bool = False) -> list[TokenizedConversation]:
    """Token ids and labels (the id where trained on, -100 where masked) of every conversation, encoded in
    batches with the fast tokenizer. `tools[i]` (optional) is passed to the chat template of conversation i."""
    check_tokenizer(tokenizer)
    rendered = [assistant_spans(tokenizer, messages, mask_history, tools[i] if tools else None)
                for i, messages in enumerate(conversations)]
    results = []
    for start in range(0, len(rendered), ENCODE_BATCH):
        chunk = rendered[start:start + ENCODE_BATCH]
        encoded = tokenizer([text for text, _ in chunk], add_special_tokens=False, return_offsets_mapping=True)
        for (text, spans), ids, offsets in zip(chunk, encoded["input_ids"], encoded["offset_mapping"]):
            labels = list(ids) if train_on_prompt else _labels(ids, offsets, spans)
            results.append(TokenizedConversation(list(ids), labels, text if keep_text else "",
                                                 [tuple(o) for o in offsets] if keep_text else []))
    return results


def tokenize_conversation(tokenizer, messages: list[dict[str, Any]], train_on_prompt: bool = False,
                          mask_history: bool = False) -> TokenizedConversation:
    """Token ids of one conversation and its labels: the id where the token is trained on, -100 where masked."""
    return tokenize_conversations(tokenizer, [messages], train_on_prompt, mask_history)[0]


def mask_view(tokenizer, messages: list[dict[str, Any]], train_on_prompt: bool = False,
              mask_history: bool = False) -> list[tuple[str, bool]]:
    """The conversation as rendered by the chat template, token by token: (the token's text, trained on?).

    Built by tokenize_conversations, the function the trainer's dataset comes from."""
    encoded = tokenize_conversations(tokenizer, [messages], train_on_prompt, mask_history, keep_text=True)[0]
    return [(encoded.text[a:b], label != IGNORE_INDEX) for (a, b), label in zip(encoded.offsets, encoded.labels)]
