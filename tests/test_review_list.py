"""The learning loop: questions the bot handled badly, grouped, turned into FAQ entries."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import BotDecision, Conversation, FaqEntry, Message, Site, Visitor
from chat.services import review
from chat.services.conversations import conversation_start, visitor_message_receive
from chat.services.visitors import visitor_create

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def conversation_with(site: Site, question: str) -> Conversation:
    conversation = Conversation.objects.create(
        site=site, visitor=Visitor.objects.create(site=site), status="waiting"
    )
    Message.objects.create(conversation=conversation, seq=1, author="visitor", body=question)
    return conversation


def unsure(
    site: Site,
    question: str,
    candidate: FaqEntry | None = None,
    *,
    reason: str = "low_confidence",
    outcome: str = "handoff",
    reviewed: bool = False,
) -> BotDecision:
    """A decision the bot logged when it handed ``question`` over (or did something else)."""
    scores = []
    if candidate is not None:
        scores = [{"entry_id": candidate.pk, "title": candidate.question, "score": 0.31}]
    return BotDecision.objects.create(
        conversation=conversation_with(site, question),
        question_seq=1,
        question=question,
        outcome=outcome,
        reason=reason,
        confidence=0.31,
        scores=scores,
        reviewed=reviewed,
    )


def unhelpful(site: Site, question: str, entry: FaqEntry) -> Message:
    """A bot answer to ``question`` that the visitor rated 👎 (no decision logged for it)."""
    return Message.objects.create(
        conversation=conversation_with(site, question),
        seq=2,
        author="bot",
        body=entry.answer,
        meta={"entry_id": entry.pk, "title": entry.question, "confidence": 0.52},
        helpful=False,
    )


@pytest.fixture
def shipping(site: Site) -> FaqEntry:
    return FaqEntry.objects.get(site=site, question="How long does shipping take?")


@pytest.fixture
def pending(site: Site, shipping: FaqEntry) -> dict[str, str]:
    """Acme's review list: three gift-card questions, one about a shop, one in Chinese."""
    refs = {
        "sell": f"d{unsure(site, 'Do you sell gift cards?', shipping).pk}",
        "buy": f"d{unsure(site, 'can I buy a gift card', shipping).pk}",
        "rated": f"m{unhelpful(site, 'gift cards for sale?', shipping).pk}",
        "paris": f"d{unsure(site, 'Is there a store in Paris?', shipping).pk}",
        "chinese": f"d{unsure(site, '礼品卡怎么买', reason='no_knowledge').pk}",
    }
    # Not for review: already reviewed, answered, or handed over on request.
    unsure(site, "Do you sell gift vouchers?", shipping, reviewed=True)
    unsure(site, "How long is shipping?", shipping, outcome="answer", reason="")
    unsure(site, "I want a human", reason="asked_for_human")
    return refs


def ask(site: Site, question: str) -> Conversation:
    """A new visitor asks; the bot takes its turn (eager Celery, after commit)."""
    visitor = visitor_create(site=site, accept_language="en")
    conversation = conversation_start(site=site, visitor=visitor)
    visitor_message_receive(conversation=conversation, body=question, client_id="c1")
    return conversation


# --- The list --------------------------------------------------------------------------------


def test_it_groups_questions_by_closest_entry_then_by_wording(site, pending):
    groups = review.review_groups(sites=Site.objects.filter(pk=site.pk))
    assert [g.refs for g in groups] == [
        [pending["sell"], pending["buy"], pending["rated"]],
        [pending["chinese"]],
        [pending["paris"]],
    ]
    gift = groups[0]
    assert gift.typical.question == "Do you sell gift cards?"
    assert gift.other_questions == ["can I buy a gift card", "gift cards for sale?"]
    assert gift.candidate_title == "How long does shipping take?"
    assert (gift.language, groups[1].language) == ("en", "zh-hans")


def test_it_shows_alice_and_bob_the_grouped_questions_of_acme(client, alice, bob, pending):
    for agent in (alice, bob):
        client.force_login(agent.user)
        page = client.get(reverse("console:review")).content.decode()
        assert page.count('class="panel review-group"') == 3
        assert "Do you sell gift cards?" in page and "礼品卡怎么买" in page
        assert "Rated not helpful" in page and "Bot unsure · 31%" in page
        assert "Do you sell gift vouchers?" not in page  # reviewed already
        assert "I want a human" not in page


def test_it_shows_charlie_nothing_of_acme(client, charlie, other_site, pending):
    unsure(other_site, "Where is Globex's office?")
    client.force_login(charlie.user)
    page = client.get(reverse("console:review")).content.decode()
    assert "Where is Globex&#x27;s office?" in page
    assert "gift" not in page and "Acme" not in page
    assert review.review_dismiss(sites=Site.objects.filter(pk=other_site.pk), refs=[]) == 0
    response = client.post(reverse("console:review_dismiss"), {"item": list(pending.values())})
    assert response.status_code == 302
    assert len(review.review_items(sites=Site.objects.filter(name="Acme"))) == 5
    assert client.get(reverse("console:review_draft"), {"item": pending["sell"]}).status_code == 404


def test_it_keeps_people_without_a_console_out(client, pending):
    response = client.get(reverse("console:review"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_reads_the_list_in_a_fixed_number_of_queries(
    client, alice, site, shipping, django_assert_num_queries
):
    client.force_login(alice.user)
    unsure(site, "Do you sell gift cards?", shipping)
    # 10: the top bar's status control counts the agent's assigned conversations, and the
    # access helper looks up which teams' conversations the agent may read.
    with django_assert_num_queries(10):
        client.get(reverse("console:review"))
    topics = ["apples", "bikes", "candles", "drums", "easels", "flutes", "globes", "hammocks"]
    for topic in topics:
        unsure(site, f"Do you sell {topic}?", shipping)
        unhelpful(site, f"{topic.upper()} IN STOCK", shipping)
    with django_assert_num_queries(10):
        page = client.get(reverse("console:review")).content.decode()
    groups = review.review_groups(sites=Site.objects.filter(pk=site.pk))
    assert page.count('class="panel review-group"') == len(groups) == len(topics) + 1
    assert {len(g.items) for g in groups} == {1, 2}  # "Do you sell apples?" + "APPLES IN STOCK"


def test_it_links_the_review_list_from_the_console_top_bar(client, alice):
    client.force_login(alice.user)
    page = client.get(reverse("console:home")).content.decode()
    assert f'href="{reverse("console:review")}"' in page


def test_it_changes_nothing_over_get(client, alice, pending):
    client.force_login(alice.user)
    for name in ("console:review_create", "console:review_dismiss"):
        assert client.get(reverse(name), {"item": pending["sell"]}).status_code == 405


# --- Acting on a group -----------------------------------------------------------------------


def test_it_prefills_the_entry_form_from_the_group(client, alice, site, pending):
    client.force_login(alice.user)
    refs = [pending["sell"], pending["buy"], pending["rated"]]
    form = client.get(reverse("console:review_draft"), {"item": refs}).context["form"]
    assert form.initial["question"] == "Do you sell gift cards?"
    assert form.initial["phrasings"] == "can I buy a gift card\ngift cards for sale?"
    assert form.initial["language"] == "en"
    assert form.initial["items"].split() == refs
    partial = client.get(reverse("console:review_draft"), {"item": refs}, **HTMX)
    page = partial.content.decode()
    assert page.lstrip().startswith('<form id="entry-form"')  # just the form, for htmx
    assert "can I buy a gift card\ngift cards for sale?</textarea>" in page


def test_it_creates_an_entry_from_a_group_marks_it_reviewed_and_the_bot_then_answers(
    client, alice, site, django_capture_on_commit_callbacks
):
    site.llm_mode = Site.LlmMode.OFF
    site.save()
    with django_capture_on_commit_callbacks(execute=True):
        asked = [ask(site, "Do you sell gift cards?"), ask(site, "can I buy a gift card")]
    decisions = BotDecision.objects.filter(conversation__in=asked).order_by("pk")
    assert [(d.outcome, d.reason) for d in decisions] == [("handoff", "low_confidence")] * 2

    client.force_login(alice.user)
    refs = [f"d{d.pk}" for d in decisions]
    form = client.get(reverse("console:review_draft"), {"item": refs}).context["form"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            reverse("console:review_create"),
            {**form.initial, "answer": "Yes: e-gift cards from $10, in the shop's Gifts page."},
            **HTMX,
        )
    assert "Added “Do you sell gift cards?” to the FAQ of Acme" in response.content.decode()
    assert len(callbacks) == 1  # the reindex, after commit
    entry = FaqEntry.objects.get(site=site, question="Do you sell gift cards?")
    assert (entry.phrasing_list, entry.language) == (["can I buy a gift card"], "en")
    assert all(d.reviewed for d in BotDecision.objects.filter(pk__in=[d.pk for d in decisions]))
    assert "gift" not in client.get(reverse("console:review")).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        again = ask(site, "Can I buy a gift card?")
    reply = Message.objects.get(conversation=again, author="bot")
    assert reply.meta["entry_id"] == entry.pk
    assert reply.body == entry.answer


def test_it_refuses_an_entry_that_exists_and_shows_the_form_again(client, alice, site, pending):
    client.force_login(alice.user)
    data = {
        "site": site.pk,
        "items": pending["paris"],
        "question": "how long does shipping take?",
        "phrasings": "",
        "answer": "Three days.",
        "language": "en",
        "tags": "",
    }
    response = client.post(reverse("console:review_create"), data, **HTMX)
    assert "exists already" in response.content.decode()
    assert FaqEntry.objects.filter(site=site).count() == 4
    assert not BotDecision.objects.get(pk=pending["paris"][1:]).reviewed


def test_it_will_not_create_an_entry_on_a_site_the_agent_cannot_see(client, charlie, site, pending):
    client.force_login(charlie.user)
    data = {
        "site": site.pk,
        "items": pending["sell"],
        "question": "Do you sell gift cards?",
        "answer": "No.",
        "language": "en",
    }
    response = client.post(reverse("console:review_create"), data)
    assert response.status_code == 200 and "site" in response.context["form"].errors
    assert not FaqEntry.objects.filter(question="Do you sell gift cards?").exists()


def test_it_dismisses_a_group_logging_a_reviewed_decision_for_an_unlogged_answer(
    client, bob, site, pending
):
    client.force_login(bob.user)
    refs = [pending["sell"], pending["buy"], pending["rated"]]
    response = client.post(reverse("console:review_dismiss"), {"item": refs}, **HTMX)
    assert "Dismissed 3 questions." in response.content.decode()
    rated = Message.objects.get(pk=pending["rated"][1:])
    logged = BotDecision.objects.get(conversation=rated.conversation, answer_seq=rated.seq)
    assert (logged.outcome, logged.reviewed, logged.question) == (
        "answer",
        True,
        "gift cards for sale?",
    )
    groups = review.review_groups(sites=Site.objects.filter(pk=site.pk))
    assert [g.refs for g in groups] == [[pending["chinese"]], [pending["paris"]]]


def test_it_marks_a_logged_unhelpful_answer_reviewed_in_its_decision(site, shipping):
    rated = unhelpful(site, "gift cards for sale?", shipping)
    decision = BotDecision.objects.create(
        conversation=rated.conversation,
        question_seq=1,
        question="gift cards for sale?",
        outcome="answer",
        entry_id=shipping.pk,
        answer_seq=rated.seq,
    )
    acme = Site.objects.filter(pk=site.pk)
    assert review.review_dismiss(sites=acme, refs=[f"m{rated.pk}"]) == 1
    decision.refresh_from_db()
    assert decision.reviewed
    assert BotDecision.objects.filter(conversation=rated.conversation).count() == 1
    assert review.review_groups(sites=acme) == []


def test_it_shows_an_agent_only_questions_from_conversations_they_may_see(
    client, alice, bob, site, support, shipping
):
    """Bob (Sales) never reads what Support's customers asked; Alice (Support) does."""
    mine = unsure(site, "Do you sell gift cards?", shipping)
    theirs = unsure(site, "My Support-only question about an invoice", shipping)
    Conversation.objects.filter(pk=theirs.conversation_id).update(team=support)

    client.force_login(bob.user)
    page = client.get(reverse("console:review")).content.decode()
    assert "gift cards" in page
    assert "invoice" not in page
    client.post(reverse("console:review_dismiss"), {"item": [f"d{theirs.pk}"]})
    theirs.refresh_from_db()
    assert not theirs.reviewed  # nor can he dismiss it by naming it

    client.force_login(alice.user)
    page = client.get(reverse("console:review")).content.decode()
    assert "gift cards" in page and "invoice" in page
    assert mine.conversation.team is None
