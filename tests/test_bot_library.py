"""The FAQ bot library: retrieval, confidence and the answer, clarify or hand-off decision.

Pure Python: nothing here touches Django or the database. The index embeds with the real
bundled sentence encoder (loaded once, ~2 s), so these tests check what visitors would get.
"""

# Chinese text is written with full-width punctuation, and visitors type full-width letters.

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bots import (
    DEFAULT_CLARIFY_THRESHOLD,
    DEFAULT_THRESHOLD,
    Answer,
    Candidate,
    Clarify,
    Decision,
    Handoff,
    HandoffReason,
    KnowledgeEntry,
    KnowledgeIndex,
    Turn,
    clear_index_cache,
    decide,
    index_for,
    wants_human,
)
from bots.classifier import MAX_LOGISTIC_ENTRIES
from bots.embeddings import CachedEmbedder, Concatenated, MiniLM
from bots.knowledge import CACHE_SIZE


def entry(
    entry_id: int, question: str, answer: str, *phrasings: str, language: str = "en"
) -> KnowledgeEntry:
    return KnowledgeEntry(
        id=entry_id, question=question, phrasings=phrasings, answer=answer, language=language
    )


# A small shop's FAQ, the way a site owner would write it: a question, a few other ways people
# ask it, and the answer.
SHIPPING_TIME = entry(
    1,
    "How long does shipping take?",
    "Orders ship within 1 business day. Standard delivery takes 3-5 business days, "
    "express delivery 1-2 business days.",
    "When will my order arrive?",
    "How long is delivery?",
    "Delivery time",
    "How many days until I receive my package?",
)
RETURN_POLICY = entry(
    2,
    "What is your return policy?",
    "You can return any unworn item within 30 days of delivery for a full refund. "
    "Start a return from the Orders page of your account.",
    "Can I return an item?",
    "How do I send something back?",
    "Returns",
    "I want to return my shoes",
)
TRACK_ORDER = entry(
    3,
    "How can I track my order?",
    "Once your order ships we email you a tracking link. You can also find it under "
    "Orders in your account.",
    "Where is my order?",
    "Where is my package?",
    "Order status",
    "Tracking number",
)
CHANGE_ADDRESS = entry(
    4,
    "Can I change my shipping address?",
    "You can change the delivery address until the order ships: open the order in your "
    "account and choose Edit address.",
    "I entered the wrong address",
    "Update delivery address",
    "Ship to a different address",
)
PAYMENT_METHODS = entry(
    5,
    "What payment methods do you accept?",
    "We accept Visa, Mastercard, American Express, PayPal, Apple Pay and Google Pay.",
    "Can I pay with PayPal?",
    "Do you take credit cards?",
    "How can I pay?",
)
RESET_PASSWORD = entry(
    6,
    "How do I reset my password?",
    "Click 'Forgot password' on the sign-in page and we will email you a reset link.",
    "I forgot my password",
    "I can't log in to my account",
    "Change password",
)
CANCEL_ORDER = entry(
    7,
    "How do I cancel my order?",
    "Orders can be cancelled within one hour of purchase from the Orders page. "
    "After that, wait for delivery and return the items.",
    "Cancel an order",
    "I ordered by mistake",
    "Can I still cancel?",
)
REFUND_TIME = entry(
    8,
    "How long does a refund take?",
    "Refunds are issued within 2 business days of receiving your return; your bank may "
    "take 5-10 days to show them.",
    "When will I get my money back?",
    "Refund status",
    "I haven't received my refund",
)
INTERNATIONAL_SHIPPING = entry(
    9,
    "Do you ship internationally?",
    "We ship to the EU, the UK, the US and Canada. Duties are calculated at checkout.",
    "Do you deliver abroad?",
    "Which countries do you ship to?",
    "Shipping outside the US",
)
SIZE_GUIDE = entry(
    10,
    "How do I find my size?",
    "Every product page has a size chart. If you are between two sizes, pick the larger.",
    "Size guide",
    "What size should I order?",
    "Do your shoes run small?",
)
RETURNS_ZH = entry(
    11,
    "如何申请退货？",
    "收到商品30天内可申请退货。请在“我的订单”中选择对应订单，点击“申请退货”。",
    "我想退货",
    "怎么退货",
    "退换货政策",
    language="zh-hans",
)
SHIPPING_FEE_ZH = entry(
    12,
    "运费是多少？",
    "订单满99元包邮，未满99元收取运费10元。",
    "邮费怎么算",
    "包邮吗",
    "运费多少钱",
    language="zh-hans",
)
CHANGE_ADDRESS_ZH = entry(
    13,
    "下单后可以修改收货地址吗？",
    "订单发货前，可以在“我的订单”中修改收货地址。发货后请联系快递公司。",
    "怎么改地址",
    "地址填错了",
    "更换收货地址",
    language="zh-hans",
)

FAQ = (
    SHIPPING_TIME,
    RETURN_POLICY,
    TRACK_ORDER,
    CHANGE_ADDRESS,
    PAYMENT_METHODS,
    RESET_PASSWORD,
    CANCEL_ORDER,
    REFUND_TIME,
    INTERNATIONAL_SHIPPING,
    SIZE_GUIDE,
    RETURNS_ZH,
    SHIPPING_FEE_ZH,
    CHANGE_ADDRESS_ZH,
)


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    return KnowledgeIndex.build(FAQ)


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    clear_index_cache()
    yield
    clear_index_cache()


def ask(
    index: KnowledgeIndex,
    message: str,
    threshold: float = DEFAULT_THRESHOLD,
    clarify: float = DEFAULT_CLARIFY_THRESHOLD,
) -> Decision:
    return decide(
        index=index,
        history=[Turn(role="visitor", body=message)],
        threshold=threshold,
        clarify_threshold=clarify,
    )


# Answering


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("How long will shipping take?", SHIPPING_TIME),
        ("when will my package arrive", SHIPPING_TIME),
        ("how many days for delivery?", SHIPPING_TIME),
        ("What's your returns policy?", RETURN_POLICY),
        ("Can I send my shoes back?", RETURN_POLICY),
        ("Where's my order??", TRACK_ORDER),
        ("what's the status of my order", TRACK_ORDER),
        ("I need to change the address on my order", CHANGE_ADDRESS),
        ("wrong shipping address", CHANGE_ADDRESS),
        ("Do you accept PayPal?", PAYMENT_METHODS),
        ("can I pay by credit card", PAYMENT_METHODS),
        ("I forgot my password", RESET_PASSWORD),
        ("I can't log into my account", RESET_PASSWORD),
        ("how can I cancel an order", CANCEL_ORDER),
        ("When do I get my money back?", REFUND_TIME),
        ("I still haven't received my refund", REFUND_TIME),
        ("which countries do you deliver to", INTERNATIONAL_SHIPPING),
        ("What size should I get?", SIZE_GUIDE),
    ],
)
def test_it_answers_a_paraphrase_with_the_right_entry(
    index: KnowledgeIndex, message: str, expected: KnowledgeEntry
) -> None:
    decision = ask(index, message)

    assert isinstance(decision, Answer), decision
    assert decision.entry_id == expected.id
    assert decision.confidence >= 0.5


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("我想退货", RETURNS_ZH),
        ("怎么申请退货？", RETURNS_ZH),
        ("运费多少", SHIPPING_FEE_ZH),
        ("包邮吗？", SHIPPING_FEE_ZH),
        ("邮费多少钱", SHIPPING_FEE_ZH),
        ("改地址", CHANGE_ADDRESS_ZH),
        ("收货地址写错了", CHANGE_ADDRESS_ZH),
        ("能修改地址吗", CHANGE_ADDRESS_ZH),
    ],
)
def test_it_answers_chinese_questions_from_chinese_entries(
    index: KnowledgeIndex, message: str, expected: KnowledgeEntry
) -> None:
    decision = ask(index, message)

    assert isinstance(decision, Answer), decision
    assert decision.entry_id == expected.id
    assert decision.confidence >= 0.5


def test_it_answers_with_the_entry_question_as_title_and_its_answer_as_body(
    index: KnowledgeIndex,
) -> None:
    decision = ask(index, "How do I reset my password?")

    assert isinstance(decision, Answer)
    assert decision.entry_id == RESET_PASSWORD.id
    assert decision.title == "How do I reset my password?"
    assert decision.body == RESET_PASSWORD.answer
    assert decision.confidence >= 0.95


def test_it_matches_regardless_of_case_width_and_plurals(index: KnowledgeIndex) -> None:
    assert index.search("ＤＯ ＹＯＵ ＡＣＣＥＰＴ ＰＡＹＰＡＬ", k=1)[0][0] == PAYMENT_METHODS
    assert index.search("where are my orders", k=1)[0][0] == TRACK_ORDER
    assert index.search("I ordered the wrong size by mistake", k=1)[0][0] == CANCEL_ORDER


def test_it_answers_the_last_visitor_turn(index: KnowledgeIndex) -> None:
    history = [
        Turn(role="visitor", body="How long does shipping take?"),
        Turn(role="bot", body=SHIPPING_TIME.answer),
        Turn(role="visitor", body="And how do I cancel my order?"),
        Turn(role="system", body="The visitor is typing"),
    ]

    decision = decide(index=index, history=history, threshold=DEFAULT_THRESHOLD)

    assert isinstance(decision, Answer)
    assert decision.entry_id == CANCEL_ORDER.id


def test_it_answers_at_exactly_the_threshold_and_hands_off_just_below(
    index: KnowledgeIndex,
) -> None:
    [(_, confidence)] = index.search("do you take apple pay", k=1)

    assert isinstance(ask(index, "do you take apple pay", threshold=confidence), Answer)
    below = ask(index, "do you take apple pay", threshold=confidence + 0.01, clarify=1.1)
    assert isinstance(below, Handoff)
    assert below.reason == HandoffReason.LOW_CONFIDENCE
    assert below.confidence == confidence


# Handing off


@pytest.mark.parametrize(
    "message",
    [
        "What's the weather on Mars?",
        "asdf qwer",
        "who won the football game",
        "what is the meaning of life",
        "can I order a pizza with extra cheese",
        "do you have a store in paris",
        "明天天气怎么样",
        "你们是谁",
    ],
)
def test_it_hands_off_questions_the_knowledge_base_does_not_cover(
    index: KnowledgeIndex, message: str
) -> None:
    decision = ask(index, message)

    assert isinstance(decision, Handoff)
    assert decision.reason == HandoffReason.LOW_CONFIDENCE
    assert decision.confidence < 0.3
    assert decision.scores[0].score == decision.confidence  # what the agent sees


@pytest.mark.parametrize(
    "message",
    [
        "what is your phone number",  # shares "number" with "Tracking number"
        "I love your shoes",  # shares "shoes" with two entries
        "can I order a pizza",
    ],
)
def test_it_hands_off_questions_that_only_share_a_word_with_an_entry(
    index: KnowledgeIndex, message: str
) -> None:
    decision = ask(index, message)

    assert isinstance(decision, Handoff)
    assert decision.reason == HandoffReason.LOW_CONFIDENCE
    assert 0 < decision.confidence < DEFAULT_THRESHOLD


@pytest.mark.parametrize(
    "message",
    [
        "I want to talk to a human",
        "I want to speak to someone about my refund",
        "How long does shipping take? Get me an agent",
        "转人工",
        "人工客服，我要退货",
    ],
)
def test_it_hands_off_when_the_visitor_asks_for_a_human_even_if_an_entry_matches(
    index: KnowledgeIndex, message: str
) -> None:
    assert ask(index, message) == Handoff(reason=HandoffReason.ASKED_FOR_HUMAN, confidence=0.0)


def test_it_hands_off_for_lack_of_knowledge_when_the_site_has_no_entries() -> None:
    empty = KnowledgeIndex.build([])

    decision = ask(empty, "How long does shipping take?")

    assert decision == Handoff(reason=HandoffReason.NO_KNOWLEDGE, confidence=0.0)


def test_it_still_honours_a_request_for_a_human_when_the_site_has_no_entries() -> None:
    decision = ask(KnowledgeIndex.build([]), "real person please")

    assert decision == Handoff(reason=HandoffReason.ASKED_FOR_HUMAN, confidence=0.0)


@pytest.mark.parametrize(
    "message", ["", "   ", "?!", "。。。！", "the", "a an the of", "😀", "的了吗"]
)
def test_it_hands_off_an_empty_or_meaningless_message_without_crashing(
    index: KnowledgeIndex, message: str
) -> None:
    assert index.search(message) == []
    assert ask(index, message) == Handoff(reason=HandoffReason.LOW_CONFIDENCE, confidence=0.0)


def test_it_hands_off_when_no_visitor_has_spoken_yet(index: KnowledgeIndex) -> None:
    history = [Turn(role="system", body="Conversation started"), Turn(role="bot", body="Hi!")]

    decision = decide(index=index, history=history, threshold=DEFAULT_THRESHOLD)

    assert decision == Handoff(reason=HandoffReason.LOW_CONFIDENCE, confidence=0.0)


# Clarifying, repeating, scores


CANCEL_SUBSCRIPTION = entry(
    31,
    "How do I cancel my subscription?",
    "Open Account, then Subscription, and choose Cancel.",
    "Cancel a subscription",
    "Stop my subscription",
)
CANCEL_AN_ORDER = entry(
    30, "How do I cancel my order?", "Open Orders and choose Cancel.", "Cancel an order"
)


def test_it_asks_which_entry_the_visitor_means_when_two_fit_about_equally() -> None:
    index = KnowledgeIndex.build(
        [CANCEL_AN_ORDER, CANCEL_SUBSCRIPTION, SHIPPING_TIME, RESET_PASSWORD, PAYMENT_METHODS]
    )

    decision = ask(index, "cancellation")

    assert isinstance(decision, Clarify), decision
    assert set(decision.candidates) == {
        (CANCEL_AN_ORDER.id, CANCEL_AN_ORDER.question),
        (CANCEL_SUBSCRIPTION.id, CANCEL_SUBSCRIPTION.question),
    }
    assert decision.candidates[0][0] == decision.scores[0].entry_id
    # The button sends the title back, and that answers.
    picked = ask(index, CANCEL_SUBSCRIPTION.question)
    assert isinstance(picked, Answer)
    assert picked.entry_id == CANCEL_SUBSCRIPTION.id


def test_it_attaches_the_best_candidates_with_their_scores_to_every_decision(
    index: KnowledgeIndex,
) -> None:
    answered = ask(index, "how long does it take to get my refund")
    handed_off = ask(index, "can I order a pizza")

    for decision in (answered, handed_off):
        scores = [candidate.score for candidate in decision.scores]
        assert 1 < len(scores) <= 5
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == decision.confidence
    assert answered.scores[0] == Candidate(
        entry_id=REFUND_TIME.id, title=REFUND_TIME.question, score=answered.confidence
    )
    assert answered.scores[0].as_json() == {
        "entry_id": REFUND_TIME.id,
        "title": REFUND_TIME.question,
        "score": round(answered.confidence, 4),
    }


def test_it_hands_off_a_question_it_has_already_answered_in_the_conversation(
    index: KnowledgeIndex,
) -> None:
    history = [
        Turn(role="visitor", body="How long does shipping take?"),
        Turn(role="bot", body=SHIPPING_TIME.answer, entry_id=SHIPPING_TIME.id),
        Turn(role="visitor", body="ok but how many days until my package arrives??"),
    ]

    decision = decide(index=index, history=history)

    assert isinstance(decision, Handoff)
    assert decision.reason == HandoffReason.REPEATED
    assert decision.scores[0].entry_id == SHIPPING_TIME.id


def test_it_still_answers_a_new_question_after_an_earlier_answer(index: KnowledgeIndex) -> None:
    history = [
        Turn(role="visitor", body="How long does shipping take?"),
        Turn(role="bot", body=SHIPPING_TIME.answer, entry_id=SHIPPING_TIME.id, helpful=False),
        Turn(role="visitor", body="How do I reset my password?"),
    ]

    decision = decide(index=index, history=history)

    assert isinstance(decision, Answer)
    assert decision.entry_id == RESET_PASSWORD.id


def test_it_hands_off_after_two_answers_were_marked_unhelpful(index: KnowledgeIndex) -> None:
    history = [
        Turn(role="visitor", body="How long does shipping take?"),
        Turn(role="bot", body=SHIPPING_TIME.answer, entry_id=SHIPPING_TIME.id, helpful=False),
        Turn(role="visitor", body="What is your return policy?"),
        Turn(role="bot", body=RETURN_POLICY.answer, entry_id=RETURN_POLICY.id, helpful=False),
        Turn(role="visitor", body="How do I reset my password?"),
    ]

    decision = decide(index=index, history=history)

    assert decision == Handoff(reason=HandoffReason.UNHELPFUL, confidence=0.0)


# The embedding backend


class LetterEmbedder:
    """A stand-in backend: counts letters, so only spelling makes texts alike."""

    name = "letters"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), 26), dtype=np.float32)
        for row, text in enumerate(texts):
            for letter in text.lower():
                if "a" <= letter <= "z":
                    vectors[row, ord(letter) - ord("a")] += 1
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def test_it_embeds_entries_and_questions_with_the_backend_it_was_built_with() -> None:
    embedder = LetterEmbedder()

    index = KnowledgeIndex.build([SHIPPING_TIME, RESET_PASSWORD], embedder=embedder)
    found = index.search("I forgot my password")

    assert index.embedder is embedder
    assert SHIPPING_TIME.question in embedder.calls[0]
    assert embedder.calls[-1] == ["I forgot my password"]
    assert found[0][0] == RESET_PASSWORD


def test_it_embeds_each_text_once_while_it_is_remembered() -> None:
    letters = LetterEmbedder()
    cached = CachedEmbedder(letters, size=3)

    first = cached.embed(["refund", "order", "refund"])
    again = cached.embed(["order", "refund"])
    cached.embed(["parcel", "invoice"])  # pushes out the least recently used: "order"
    cached.embed(["order"])

    assert letters.calls == [["refund", "order"], ["parcel", "invoice"], ["order"]]
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(again, letters.embed(["order", "refund"]))
    assert len(cached) == 3 and cached.name == letters.name


def test_it_weighs_the_parts_of_a_concatenated_embedding() -> None:
    both = Concatenated([(LetterEmbedder(), 1.0), (LetterEmbedder(), 2.0)])

    vectors = both.embed(["abc", "xyz"])

    assert vectors.shape == (2, 52)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors[0, 26:29], 2 * vectors[0, 0:3], rtol=1e-5)


def test_minilm_puts_paraphrases_close_and_does_not_depend_on_the_batch() -> None:
    model = MiniLM()
    texts = ["My card has not arrived yet", "I am still waiting for my new card", "Exchange rate?"]

    together = model.embed(texts)
    alone = np.vstack([model.embed([text]) for text in texts])

    np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    assert together[0] @ together[1] > together[0] @ together[2] + 0.2


# Recognising a request for a person


@pytest.mark.parametrize(
    "message",
    [
        "human please",
        "Can I talk to a human?",
        "I want a real person",
        "is there a live agent?",
        "AGENT",
        "operator",
        "get me a representative",
        "can I speak to someone",
        "put me through to customer service",
        "you're not a bot, are you?",
        "转人工",
        "我要找人工服务",
        "客服在吗",
        "有真人吗",
    ],
)
def test_it_recognises_a_request_for_a_person(message: str) -> None:
    assert wants_human(message)


@pytest.mark.parametrize(
    "message",
    [
        "How long does shipping take?",
        "I want to be an agent of change",
        "do you sell wigs?",
        "human resources department",
        "Where is my order?",
        "我想退货",
        "你是人工智能吗",
        "",
    ],
)
def test_it_does_not_mistake_other_messages_for_a_request_for_a_person(message: str) -> None:
    assert not wants_human(message)


# Searching


def test_it_ranks_the_best_entry_first_with_confidence_between_0_and_1(
    index: KnowledgeIndex,
) -> None:
    hits = index.search("how long does it take to get my refund", k=3)

    entries, confidences = zip(*hits, strict=True)
    assert entries[0] == REFUND_TIME
    assert list(confidences) == sorted(confidences, reverse=True)
    assert all(0 < confidence <= 1 for confidence in confidences)


def test_it_returns_at_most_k_entries(index: KnowledgeIndex) -> None:
    assert len(index.search("order", k=2)) == 2
    assert len(index.search("order", k=100)) <= len(FAQ)


def test_it_counts_every_entry_even_those_with_nothing_to_index() -> None:
    silent = entry(1, "Is it?", "It is.")

    index = KnowledgeIndex.build([silent, SHIPPING_TIME])

    assert len(index) == 2
    assert index.search("is it") == []
    assert index.search("shipping time")[0][0] == SHIPPING_TIME


def test_it_searches_a_knowledge_base_of_one_entry() -> None:
    index = KnowledgeIndex.build([RESET_PASSWORD])

    [(found, confidence)] = index.search("How do I reset my password?")
    assert found == RESET_PASSWORD
    assert confidence >= 0.8  # with nothing to tell apart, similarity alone vouches for it
    assert index.search("reset my password")[0][1] >= DEFAULT_THRESHOLD
    assert index.search("weather on mars")[0][1] < 0.3


def test_it_searches_a_knowledge_base_whose_entries_are_all_empty() -> None:
    index = KnowledgeIndex.build([entry(1, "?", "")])

    assert index.search("anything") == []
    assert ask(index, "anything") == Handoff(reason=HandoffReason.LOW_CONFIDENCE, confidence=0.0)


def test_it_tells_apart_entries_of_a_knowledge_base_too_large_for_logistic_regression() -> None:
    # Past MAX_LOGISTIC_ENTRIES the classifier is linear discriminant analysis. Speed is
    # measured by `python -m bots.bench --entries 10000`, not here.
    count = MAX_LOGISTIC_ENTRIES + 100
    entries = [
        entry(
            i,
            f"How do I use feature {i} with plan {i % 7}?",
            f"Feature {i} is available on plan {i % 7}; open settings and switch it on.",
            f"enable feature {i}",
        )
        for i in range(count)
    ]

    index = KnowledgeIndex.build(entries)

    assert len(index) == count
    for i in (3, 42, count - 1):
        assert index.search(f"how can I enable feature {i}")[0][0].id == i


# The process-wide cache


class Loader:
    """An entries loader that counts how often the cache had to call it."""

    def __init__(self, entries: Sequence[KnowledgeEntry] = FAQ) -> None:
        self.entries = entries
        self.calls = 0

    def __call__(self) -> Sequence[KnowledgeEntry]:
        self.calls += 1
        return self.entries


def test_it_builds_an_index_once_per_key() -> None:
    loader = Loader()

    first = index_for((1, "v1"), loader)
    again = index_for((1, "v1"), loader)

    assert again is first
    assert loader.calls == 1
    assert len(first) == len(FAQ)


def test_it_rebuilds_the_index_when_the_key_changes() -> None:
    index_for((1, "v1"), Loader([SHIPPING_TIME]))
    loader = Loader([SHIPPING_TIME, RETURN_POLICY])

    rebuilt = index_for((1, "v2"), loader)

    assert loader.calls == 1
    assert len(rebuilt) == 2


def test_it_keeps_sites_apart() -> None:
    acme = index_for((1, "v1"), Loader([SHIPPING_TIME]))
    globex = index_for((2, "v1"), Loader([RETURN_POLICY]))

    assert acme.search("shipping")[0][0] == SHIPPING_TIME
    assert acme.search("shipping")[0][1] >= DEFAULT_THRESHOLD
    assert globex.search("shipping")[0][1] < DEFAULT_THRESHOLD


def test_it_forgets_the_least_recently_used_index_beyond_its_size() -> None:
    loaders = {site: Loader([SHIPPING_TIME]) for site in range(CACHE_SIZE + 1)}
    for site in range(CACHE_SIZE):
        index_for(site, loaders[site])
    index_for(0, loaders[0])  # site 0 is used again, so site 1 is now the oldest

    index_for(CACHE_SIZE, loaders[CACHE_SIZE])
    index_for(0, loaders[0])
    index_for(1, loaders[1])

    assert loaders[0].calls == 1
    assert loaders[1].calls == 2


def test_it_gives_every_thread_the_same_index() -> None:
    results: list[KnowledgeIndex] = []
    start = threading.Barrier(8)

    def fetch() -> None:
        start.wait()
        results.append(index_for((1, "v1"), Loader()))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 8
    assert all(result is results[0] for result in results)


# Boundaries


def test_it_never_imports_django_or_the_chat_app() -> None:
    code = (
        "import sys, bots; bots.decide(index=bots.KnowledgeIndex.build([]), history=[], "
        "threshold=0.5); print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'chat', 'helpdesk')))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.strip() == "[]"
