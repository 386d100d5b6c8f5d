"""The `chars` dataset: next-character prediction from a text.

Each example is a window of the text: x = the `block` characters at positions i .. i+block-1
as token ids (i32[block]), y = the id of the character at i+block (i32). The text is the
user's (`path="text.txt"`, UTF-8) or the built-in corpus, a seeded sample of a small
probabilistic grammar (GRAMMAR below), so nothing is downloaded and its entropy is known
exactly. The first (1 - test_fraction) of the text gives the training windows, the rest the
test windows (no window crosses the split). Token ids number the text's distinct characters
in sorted order; `vocab` (the size the program's parameters use) must cover them.

Two reference figures come with it, both in nats per character:
- bigram_test_loss: the cross-entropy on the test windows of the bigram model fitted on the
  training text (counts of each character after each character, plus one: add-one
  smoothing over the text's alphabet), predicting y from the last character of x;
- entropy (built-in corpus only): the entropy rate of the grammar's text, the least
  cross-entropy any model can reach on it. Sentences are drawn independently and their
  strings are distinct, so the rate is H(sentence) / E[characters per sentence].
"""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass

import numpy as np

from simulator.errors import SimError
from simulator.inputs import check_file

from .errors import Loc, SirError

MAX_TEXT_BYTES = 64 << 20       # a user's text is read whole: 64 MiB at most
MAX_LENGTH = 10_000_000         # characters of the built-in corpus

# The grammar: "DET [ADJ] NOUN VERB DET [ADJ] NOUN. " with the verb chosen by the subject's
# noun and the object's noun by the verb, so a character depends on words well before it
# (what a bigram cannot see). Weights are relative within each choice.
DETS = (("the", 5), ("a", 3), ("one", 2))
ADJS = ((None, 6), ("big", 1), ("small", 1), ("red", 1), ("old", 1), ("happy", 1))
NOUNS = (("cat", 1), ("dog", 1), ("bird", 1), ("fish", 1), ("horse", 1))
VERBS = {"cat": (("sees", 2), ("eats", 1), ("likes", 1)),
         "dog": (("chases", 2), ("sees", 1), ("finds", 1)),
         "bird": (("sings", 1), ("sees", 1)),
         "fish": (("eats", 1), ("avoids", 1)),
         "horse": (("pulls", 2), ("likes", 1))}
OBJECTS = {"sees": NOUNS, "eats": (("fish", 3), ("bird", 1)), "likes": NOUNS,
           "chases": (("cat", 2), ("bird", 1), ("horse", 1)), "finds": (("fish", 1), ("bird", 1)),
           "sings": (("bird", 1),), "avoids": (("cat", 1), ("dog", 1)),
           "pulls": (("cat", 1), ("dog", 1), ("horse", 1))}


@dataclass(frozen=True)
class Text:
    """A text split for training: token ids, the alphabet, and where the test part starts."""
    ids: np.ndarray                 # i32, one per character
    alphabet: str                   # the distinct characters, sorted: id k is alphabet[k]
    split: int                      # ids[:split] is the training text, ids[split:] the test


def _choices(table):
    total = sum(w for _, w in table)
    return [(v, w / total) for v, w in table]


@functools.lru_cache(maxsize=1)
def sentences() -> tuple[tuple[str, ...], np.ndarray]:
    """Every sentence the grammar makes, with its probability (they sum to 1)."""
    out, probs = [], []

    def phrases(nouns):
        for (d, pd), (a, pa), (n, pn) in itertools.product(_choices(DETS), _choices(ADJS),
                                                           _choices(nouns)):
            yield " ".join(w for w in (d, a, n) if w), n, pd * pa * pn

    for subject, noun, p_subject in phrases(NOUNS):
        for verb, p_verb in _choices(VERBS[noun]):
            for obj, _, p_obj in phrases(OBJECTS[verb]):
                out.append(f"{subject} {verb} {obj}. ")
                probs.append(p_subject * p_verb * p_obj)
    return tuple(out), np.array(probs)


def grammar_entropy() -> float:
    """The entropy rate of the grammar's text in nats per character."""
    text, p = sentences()
    assert len(set(text)) == len(text)          # distinct strings: the text decodes uniquely
    lengths = np.array([len(s) for s in text])
    return float(-(p * np.log(p)).sum() / (p * lengths).sum())


def grammar_text(length: int, seed: int) -> str:
    """`length` characters of independent seeded sentences (the last one cut)."""
    text, p = sentences()
    mean = float((p * np.array([len(s) for s in text])).sum())
    rng = np.random.default_rng([seed, 4])
    picks = rng.choice(len(text), size=int(length / mean) + 16, p=p)
    out = "".join(text[i] for i in picks)
    while len(out) < length:                    # (a run of short sentences)
        out += "".join(text[i] for i in rng.choice(len(text), size=16, p=p))
    return out[:length]


def load(kwargs: dict, base: str, loc: Loc) -> Text:
    """The text a chars(...) call names, as ids, checked against block and vocab."""
    return _load(tuple(sorted(kwargs.items())), base, loc)


@functools.lru_cache(maxsize=4)
def _load(items: tuple, base: str, loc: Loc) -> Text:
    kwargs = dict(items)
    if kwargs.get("path"):
        text = read_text(kwargs["path"], base, loc)
    else:
        text = grammar_text(kwargs["length"], kwargs["seed"])
    alphabet = "".join(sorted(set(text)))
    if len(alphabet) > kwargs["vocab"]:
        raise SirError(f"chars(): the text has {len(alphabet)} distinct characters, more than "
                       f"vocab={kwargs['vocab']} (set vocab to at least {len(alphabet)})", loc)
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)   # one code point a character
    ids = np.searchsorted(np.frombuffer(alphabet.encode("utf-32-le"), np.uint32),
                          codes).astype(np.int32)
    split = len(text) - int(round(len(text) * kwargs["test_fraction"]))
    block = kwargs["block"]
    for part, n in (("training", split), ("test", len(text) - split)):
        if n <= block:
            raise SirError(f"chars(): the {part} part of the text has {n} characters; a window "
                           f"needs block + 1 = {block + 1} (a longer text, or a different "
                           "test_fraction)", loc)
    return Text(ids, alphabet, split)


def read_text(path: str, base: str, loc: Loc) -> str:
    full = os.path.join(base, path) if base and not os.path.isabs(path) else path
    try:
        check_file(full, "text file", MAX_TEXT_BYTES)
        with open(full, "rb") as f:
            return f.read().decode("utf-8")
    except SimError as e:
        raise SirError(f"chars(): {e.where}: {e.message}", loc) from None
    except UnicodeDecodeError as e:
        raise SirError(f"chars(): {path} is not UTF-8 text (byte {e.start:,} is not)",
                       loc) from None
    except OSError as e:
        raise SirError(f"chars(): cannot read {path}: {e.strerror or e}", loc) from None


def windows(ids: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """x[i] = ids[i:i+block], y[i] = ids[i+block] for every window that fits."""
    n = len(ids) - block
    x = np.lib.stride_tricks.sliding_window_view(ids, block)[:n].copy()
    return x, ids[block:].copy()


def examples(text: Text, block: int) -> tuple[np.ndarray, ...]:
    xtr, ytr = windows(text.ids[:text.split], block)
    xte, yte = windows(text.ids[text.split:], block)
    return xtr, ytr, xte, yte


def bigram_test_loss(text: Text, block: int) -> float:
    """The add-one bigram fitted on the training text, on the test windows (nats/char)."""
    v = len(text.alphabet)
    train = text.ids[:text.split]
    counts = np.ones((v, v))
    np.add.at(counts, (train[:-1], train[1:]), 1)
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    test = text.ids[text.split:]            # window i: last x test[i + block - 1], y test[i + block]
    return float(-logp[test[block - 1:-1], test[block:]].mean()) + 0.0     # (not -0.0)


def baseline(kwargs: dict, base: str, loc: Loc) -> dict:
    """The reference figures of run --json's `baseline`."""
    text = load(kwargs, base, loc)
    out = {"bigram_test_loss": bigram_test_loss(text, kwargs["block"])}
    if not kwargs.get("path"):
        out["entropy"] = grammar_entropy()
    return out

