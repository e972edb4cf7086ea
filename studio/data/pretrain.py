"""Continued pre-training data: every document tokenised, ended with EOS, joined into one stream and split into
blocks of `cutoff_len` tokens. Nothing is cut: a long document spans several blocks, short ones share a block,
and the last block is simply shorter, so every token of the data is trained on once per epoch."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

ENCODE_BATCH = 256


@dataclass
class PretrainBlocks:
    """The token blocks a pt run trains on, and what they were made from."""

    blocks: list[list[int]]
    documents: int
    longer_than_cutoff: int  # documents that span more than one block

    @property
    def tokens(self) -> int:
        return sum(len(block) for block in self.blocks)

    def note(self, cutoff: int) -> str:
        """One run-log line: documents, tokens, blocks, and that nothing was cut."""
        return (f"continued pre-training: {self.documents} documents, {self.tokens:,} tokens (EOS after each) joined "
                f"and split into {len(self.blocks)} blocks of up to cutoff_len {cutoff} tokens; "
                f"{self.longer_than_cutoff} documents longer than a block span several; 0 tokens cut")


def document_tokens(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each document as the model reads it alone (BOS when the tokenizer adds one), ending with EOS."""
    eos = tokenizer.eos_token_id
    documents = []
    for start in range(0, len(texts), ENCODE_BATCH):
        for ids in tokenizer(texts[start:start + ENCODE_BATCH], add_special_tokens=True)["input_ids"]:
            ids = list(ids)
            if eos is not None and (not ids or ids[-1] != eos):
                ids.append(eos)
            documents.append(ids)
    return documents


def pack_documents(documents: list[list[int]], cutoff: int) -> PretrainBlocks:
    """The documents' tokens in order, split into blocks of `cutoff` tokens (the last one may be shorter)."""
    if cutoff < 1:
        raise ValueError(f"cutoff_len must be at least 1, got {cutoff}")
    stream = list(itertools.chain.from_iterable(documents))
    blocks = [stream[i:i + cutoff] for i in range(0, len(stream), cutoff)]
    return PretrainBlocks(blocks, len(documents), sum(1 for d in documents if len(d) > cutoff))


def pretrain_blocks(tokenizer, texts: list[str], cutoff: int) -> PretrainBlocks:
    """`texts` tokenised and packed into `cutoff`-token blocks (see the module docstring)."""
    return pack_documents(document_tokens(tokenizer, texts), cutoff)
