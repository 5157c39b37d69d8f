"""Turning text into search tokens, for English and Chinese alike.

English is lowercased, split into words, stripped of a small stop-word list and of plural
``s`` (a stemmer would be overkill for FAQ phrasings, but "orders" should find "order").
Chinese runs are segmented by jieba and also cut into character bigrams, because jieba
segments a short query differently from a long phrasing ("改地址" vs "修改/地址") while the
bigrams still overlap.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import unicodedata

import jieba

_WORD_OR_HAN = re.compile(r"[a-z0-9]+|[\u3400-\u4dbf\u4e00-\u9fff]+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_POSSESSIVE = re.compile(r"['\u2019]s\b")
_APOSTROPHE = re.compile(r"['\u2019]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Grammar and chit-chat: they say *that* someone asks, not *what* they ask. Question words
# ("where", "when", "how") are deliberately kept: once the grammar is gone, they are what tells
# "where is my order?" from "how do I order?". They are common, so they weigh little.
ENGLISH_STOP_WORDS = _words(
    """
    a about am an and any anyone are as at be been being but by can cant could did didnt do does
    doesnt doing dont for from get got had has have hello hey hi i id if ill im in into is isnt
    it its ive just know let lets like me might must my myself need of on or our please possible
    should so some tell than thank thanks that the their them then there these they this those
    to too us want was way we were will with wont would you your youre yours
    """
)

# Kept in the index but weighed lightly, see ENGLISH_STOP_WORDS.
QUESTION_WORDS = _words("how what when where which who why")
QUESTION_WORD_WEIGHT = 0.3

CHINESE_STOP_WORDS = _words(
    """
    的 了 吗 呢 吧 啊 呀 嘛 么 我 你 您 他 她 它 我们 你们 是 在
    有 和 与 就 都 也 还 要 想 请 请问 怎么 怎么办 怎样 怎么样 如何
    什么 哪里 哪儿 多少 可以 能 能不能 可不可以 一下 一个 这个 那个 这
    那 个 好 谢谢 你好 问 一 下
    """
)

_jieba_ready = False
_jieba_lock = threading.Lock()


def tokenize(text: str) -> list[str]:
    """Search tokens of ``text``, in order, duplicates kept (BM25 counts them in documents)."""
    tokens: list[str] = []
    for run in _WORD_OR_HAN.findall(normalize(text)):
        if _HAN.match(run):
            tokens.extend(_chinese_tokens(run))
        elif run not in ENGLISH_STOP_WORDS:
            tokens.append(_singular(run))
    return tokens


def word_ngrams(text: str) -> list[str]:
    """Search tokens and the pairs of neighbouring ones: "card" "arrive" "card arrive"."""
    tokens = tokenize(text)
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


def word_importance(word: str) -> float:
    """How much a word counts next to its rarity: question words only steer, never decide."""
    return QUESTION_WORD_WEIGHT if word in QUESTION_WORDS else 1.0


def word_variants(word: str) -> list[str]:
    """Forms to try for a query word the index does not know: "ordered" may be "order".

    Only for unknown words, so no stemming ever merges two words the knowledge base uses.
    """
    variants: list[str] = []
    for suffix in ("ing", "ed"):
        stem = word.removesuffix(suffix)
        if stem != word and len(stem) >= 3:
            variants += [stem, stem + "e"]
            if len(stem) >= 4 and stem[-1] == stem[-2]:  # "shipped" -> "ship"
                variants.append(stem[:-1])
    return variants


def normalize(text: str) -> str:
    """Lowercase, full-width folded to ASCII, apostrophes gone: the form every signal reads."""
    # NFKC folds full-width letters and digits, which Chinese keyboards type, into ASCII.
    # "where's" is "where", "can't" is "cant" (a stop word).
    text = unicodedata.normalize("NFKC", text).lower()
    return _APOSTROPHE.sub("", _POSSESSIVE.sub("", text))


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _chinese_tokens(run: str) -> list[str]:
    """jieba's words, plus bigrams within each stretch of words that are not stop words."""
    words: list[str] = []
    bigrams: list[str] = []
    stretch = ""
    for word in [*_segment(run), ""]:  # "" closes the last stretch
        if word and word not in CHINESE_STOP_WORDS:
            words.append(word)
            stretch += word
            continue
        bigrams.extend(stretch[i : i + 2] for i in range(len(stretch) - 1))
        stretch = ""
    return words + bigrams


def _segment(run: str) -> list[str]:
    _ensure_jieba()
    return [w for w in jieba.lcut(run) if w.strip()]


def _ensure_jieba() -> None:
    """Load jieba's dictionary once, quietly, and only if some text is Chinese."""
    global _jieba_ready
    if _jieba_ready:
        return
    with _jieba_lock:
        if not _jieba_ready:
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba_ready = True
