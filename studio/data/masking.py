"""Tokenise a conversation through the model's chat template and mark which tokens are trained on.

The studio owns label masking rather than relying on `{% generation %}` markers, which most real chat
templates lack. The conversation is rendered turn by turn; each assistant turn's text (its content and
the end-of-turn marker the template puts after it) is a trained span, everything else (system, user,
the assistant header) is masked with -100. Token offsets from a fast tokenizer map spans to tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100


class TemplateError(ValueError):
    """The tokenizer or chat template cannot be used to build trained spans; says what to change."""


@dataclass
class TokenizedConversation:
    input_ids: list[int]
    labels: list[int]


def _render(tokenizer, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the (start, end) character spans of every assistant turn in it."""
    full = _render(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], add_generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], add_generation_prompt=False)
        if not full.startswith(before) or not full.startswith(through) or len(through) < len(before):
            raise TemplateError(
                "the chat template does not render conversations turn by turn (an earlier turn changes when a "
                "later one is added), so trained tokens cannot be marked; choose a model with a standard template"
            )
        spans.append((len(before), len(through)))
    return full, spans


def tokenize_conversation(tokenizer, messages: list[dict[str, str]], train_on_prompt: bool = False) -> TokenizedConversation:
    """Token ids of the conversation and its labels: the id where the token is trained on, -100 where masked."""
    if not getattr(tokenizer, "is_fast", False):
        raise TemplateError("this model's tokenizer has no fast (Rust) version, which marking trained tokens needs")
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("this model's tokenizer has no chat template; choose an instruct/chat model")
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    if train_on_prompt:
        return TokenizedConversation(input_ids, list(input_ids))
    labels = []
    span_index = 0
    for token_id, (start, _end) in zip(input_ids, encoded["offset_mapping"]):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        inside = span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1]
        labels.append(token_id if inside else IGNORE_INDEX)
    return TokenizedConversation(input_ids, labels)
