"""Tool schemas and tool calls reach the model in its own template's form when the template renders them, and
otherwise through the documented fallback (schemas described in the system turn, calls as JSON lines) with a
warning in the run log. Call ids and types never reach the model."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer
from test_data import write_rows

from studio.data.loading import load_dataset_file
from studio.data.masking import IGNORE_INDEX, tokenize_conversations
from studio.data.tool_calls import tool_notes

TOOLS = [{"type": "function", "function": {"name": "lantern_count", "description": "Count lanterns in a town",
                                           "parameters": {"type": "object", "properties": {"town": {"type": "string"}}}}}]
OPENAI_ROW = {"tools": TOOLS, "messages": [
    {"role": "user", "content": "How many lanterns in Amberlee?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_8xq", "type": "function", "function": {"name": "lantern_count", "arguments": "{\"town\": \"Amberlee\"}"}}]},
    {"role": "tool", "tool_call_id": "call_8xq", "content": "42"},
    {"role": "assistant", "content": "There are 42 lanterns."}]}
GLAIVE_ROW = {"tools": json.dumps([TOOLS[0]["function"]]), "conversations": [
    {"from": "human", "value": "How many lanterns in Amberlee?"},
    {"from": "function_call", "value": "{\"name\": \"lantern_count\", \"arguments\": {\"town\": \"Amberlee\"}}"},
    {"from": "observation", "value": "42"}, {"from": "gpt", "value": "There are 42 lanterns."}]}
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.tool_calls %}{% for c in m.tool_calls %}"
    "<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture
def tokenizer(workspace):
    return AutoTokenizer.from_pretrained(workspace.models_dir / "tiny-demo")


@pytest.mark.parametrize("row, name", [(OPENAI_ROW, "o.jsonl"), (GLAIVE_ROW, "g.json")])
def test_tool_calls_are_read_without_ids(tmp_path, row, name):
    example = load_dataset_file(write_rows(tmp_path / name, [row])).examples[0]
    assert example["messages"][1] == {"role": "assistant", "content": "",
                                      "tool_calls": [{"name": "lantern_count", "arguments": {"town": "Amberlee"}}]}
    assert example["tools"]


def _trained_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX])


def test_a_template_without_tool_support_gets_the_fallback_and_a_warning(tmp_path, tokenizer):
    example = load_dataset_file(write_rows(tmp_path / "o.jsonl", [OPENAI_ROW])).examples[0]
    encoded = tokenize_conversations(tokenizer, [example["messages"]], tools=[example["tools"]], keep_text=True)[0]
    assert "You can call these tools, described as JSON schemas" in encoded.text and "lantern_count" in encoded.text
    assert '{"name": "lantern_count", "arguments": {"town": "Amberlee"}}' in encoded.text
    assert "call_8xq" not in encoded.text
    assert "lantern_count" in _trained_text(tokenizer, encoded)  # the call is an answer the model learns
    notes = tool_notes(tokenizer, [example])
    assert len(notes) == 2 and "described in their system turn" in notes[0] and "JSON each" in notes[1]


def test_a_template_that_renders_tools_gets_them_in_its_own_form(tmp_path, tokenizer):
    tokenizer.chat_template = TOOL_TEMPLATE
    example = load_dataset_file(write_rows(tmp_path / "g.json", [GLAIVE_ROW])).examples[0]
    encoded = tokenize_conversations(tokenizer, [example["messages"]], tools=[example["tools"]], keep_text=True)[0]
    assert encoded.text.startswith("<|im_start|>system\nTools: [{")
    call = encoded.text.split("<tool_call>")[1].split("</tool_call>")[0]
    assert json.loads(call) == {"name": "lantern_count", "arguments": {"town": "Amberlee"}}
    assert "You can call these tools" not in encoded.text and not tool_notes(tokenizer, [example])
    assert "tool_call" in _trained_text(tokenizer, encoded)
