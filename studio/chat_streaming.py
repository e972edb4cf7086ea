"""The pieces of a streamed chat reply: text handed out as tokens complete characters, cut before stop strings,
and generation ended when the user (or a reader that went away) asks for it. Used by studio/chat.py."""

from __future__ import annotations

import threading

from studio.hf_import import import_transformers


def before_stop(reply: str, stops: list[str], final: bool = False) -> tuple[str, bool]:
    """(the part of a growing reply to show, whether a stop string ended it): cut before the first stop string;
    while the reply still grows, a tail that may be the start of a stop string is held back."""
    found = [reply.index(stop) for stop in stops if stop in reply]
    if found:
        return reply[:min(found)], True
    if final:
        return reply, False
    partial = max((n for stop in stops for n in range(len(stop) - 1, 0, -1) if reply.endswith(stop[:n])), default=0)
    return reply[:len(reply) - partial], False


def piece_streamer(tokenizer):
    """A generate() streamer that hands out the reply's new text as soon as a token completes whole characters;
    iterate it for the pieces. (transformers' TextIteratorStreamer waits for a space, so a reply without one
    would show nothing until it ended.)"""
    import queue

    import_transformers()
    from transformers.generation.streamers import BaseStreamer

    class PieceStreamer(BaseStreamer):
        def __init__(self):
            self.pieces: queue.Queue = queue.Queue()
            self.ids: list[int] = []
            self.sent, self.prompt_seen = 0, False

        def _flush(self, final: bool) -> None:
            text = tokenizer.decode(self.ids, skip_special_tokens=True)
            if (final or not text.endswith("\ufffd")) and len(text) > self.sent:  # U+FFFD: a character cut in two
                self.pieces.put(text[self.sent:])
                self.sent = len(text)

        def put(self, value) -> None:
            if not self.prompt_seen:  # generate() hands over the prompt first
                self.prompt_seen = True
                return
            self.ids.extend(value.reshape(-1).tolist())
            self._flush(final=False)

        def end(self) -> None:
            self._flush(final=True)
            self.pieces.put(None)

        def __iter__(self):
            while (piece := self.pieces.get()) is not None:
                yield piece

    return PieceStreamer()


class EitherEvent:
    """Set when either of two events is (reading only; the stop criterion polls it)."""

    def __init__(self, first: threading.Event | None, second: threading.Event):
        self.first, self.second = first, second

    def is_set(self) -> bool:
        return self.second.is_set() or (self.first is not None and self.first.is_set())


def stop_when_set(event) -> list:
    """A transformers stopping-criteria list that ends generation at the next token once `event` is set."""
    import torch
    import_transformers()
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenSet(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWhenSet()])
