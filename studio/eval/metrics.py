"""Text metrics of answers against references: exact match, ROUGE-L (rouge-score) and BLEU (sacrebleu).

Chinese, Japanese and Korean text scores sensibly: rouge-score's default tokenizer keeps only ASCII letters
and digits (a Chinese answer would be empty), so ROUGE-L gets a tokenizer that makes every CJK character a
token and every run of other letters or digits a word; BLEU uses sacrebleu's "zh" tokenizer when the text
has CJK characters and its standard "13a" tokenizer otherwise.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

# CJK ideographs (with extensions and compatibility forms), kana, and fullwidth forms: one token per character.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_CJK_CHAR = re.compile(f"[{CJK}]")
_TOKEN = re.compile(f"[{CJK}]|[^\\W_{CJK}]+")
_SPACES = re.compile(r"\s+")


class CJKTokenizer:
    """Lower-cased tokens for rouge-score: each CJK character alone, other letters/digits as whole words."""

    def tokenize(self, text: str) -> list[str]:
        """The tokens of `text`, in order (punctuation dropped)."""
        return _TOKEN.findall(text.lower())


def has_cjk(*texts: str) -> bool:
    """True when any of `texts` holds a CJK character."""
    return any(_CJK_CHAR.search(text or "") for text in texts)


def normalise(text: str) -> str:
    """`text` with surrounding white space removed and inner runs of white space made one space."""
    return _SPACES.sub(" ", (text or "").strip())


def exact_match(answer: str, reference: str) -> bool:
    """True when the answer equals the reference, ignoring only differences in white space."""
    return normalise(answer) == normalise(reference)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=CJKTokenizer())


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure of `answer` against `reference`, 0-100."""
    return 100.0 * _rouge_scorer().score(reference, answer)["rougeL"].fmeasure


def _bleu(texts: list[str]):
    from sacrebleu.metrics import BLEU

    # effective_order: an n-gram order no answer is long enough to have is left out rather than zeroing the
    # score, so short answers (common in fine-tuning data) that match are not scored 0.
    return BLEU(tokenize="zh" if has_cjk(*texts) else "13a", effective_order=True)


def bleu(answer: str, reference: str) -> float:
    """Sentence BLEU of `answer` against `reference`, 0-100."""
    return _bleu([answer, reference]).sentence_score(answer, [reference]).score


def corpus_bleu(answers: list[str], references: list[str]) -> float:
    """Corpus BLEU of all answers against their references, 0-100 (0 when there are none)."""
    if not answers:
        return 0.0
    return _bleu([*answers, *references]).corpus_score(answers, [references]).score


@dataclass
class Scores:
    """One model's scores over the evaluated rows: loss and perplexity on the reference answers (answer tokens
    only, as in training), exact match %, mean ROUGE-L F and corpus BLEU (0-100)."""

    rows: int
    loss: float | None
    perplexity: float | None
    exact_match: float
    rouge_l: float
    bleu: float
    loss_tokens: int = 0


def summarise(answers: list[str], references: list[str], losses: list[tuple[float, int] | None]) -> Scores:
    """The Scores of `answers` against `references`; `losses[i]` is (mean loss, answer tokens) of row i on its
    reference, or None when the row had no answer token within the cutoff. The loss is averaged over tokens."""
    counted = [pair for pair in losses if pair and pair[1] > 0]
    tokens = sum(n for _, n in counted)
    loss = sum(value * n for value, n in counted) / tokens if tokens else None
    rows = len(answers)
    return Scores(
        rows=rows,
        loss=loss,
        perplexity=math.exp(min(loss, 50.0)) if loss is not None else None,  # capped: a random model can overflow
        exact_match=100.0 * sum(exact_match(a, r) for a, r in zip(answers, references)) / rows if rows else 0.0,
        rouge_l=sum(rouge_l(a, r) for a, r in zip(answers, references)) / rows if rows else 0.0,
        bleu=corpus_bleu(answers, references),
        loss_tokens=tokens,
    )
