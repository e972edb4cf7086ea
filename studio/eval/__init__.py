"""Evaluate a run: base and tuned answers over its validation split or a file, scored side by side.

rows.py chooses the rows, metrics.py scores answers (exact match, ROUGE-L, BLEU, loss/perplexity), job.py runs
an evaluation in the background and writes its progress, results and scores in the run folder.
"""
