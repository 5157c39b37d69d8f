"""Knowledge base: article passages, FAQ import/export (CSV, JSON, Markdown), reindexing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse

import bots
from chat.knowledge import formats
from chat.knowledge.entries import (
    PASSAGE_ID_BASE,
    entry_source,
    site_knowledge_entries,
    site_knowledge_index,
    site_knowledge_key,
)
from chat.knowledge.formats import KbFormat
from chat.knowledge.passages import MAX_WORDS, split_passages, word_count
from chat.models import Article, FaqEntry, Site, new_site_key
from chat.services.knowledge import knowledge_export, knowledge_import, site_faq_entries

pytestmark = pytest.mark.django_db

DEMO_FAQ = Path(__file__).resolve().parent.parent / "chat" / "demo" / "acme_faq.json"


def sentences(topic: str, count: int) -> str:
    """``count`` seven-word sentences about ``topic``."""
    return " ".join(f"This is sentence {i} about {topic} today." for i in range(count))


def refuse_to_build() -> list[bots.KnowledgeEntry]:
    raise AssertionError("the index should have been built already")


# --- Passages ------------------------------------------------------------------------------


def test_it_splits_an_article_by_headings_into_passages_titled_by_their_path():
    body = "\n".join(
        [
            "# Returns guide",
            "",
            sentences("returns", 3),
            "",
            "## Refunds",
            "",
            sentences("refunds", 17),
            "",
            sentences("refund timing", 17),
            "",
            "### Store credit",
            "",
            sentences("store credit", 2),
            "",
            "## Exchanges",
            "## Damaged items",
            "",
            "```",
            "# not a heading inside code",
            "```",
        ]
    )
    passages = split_passages("Returns guide", body)
    assert [p.title for p in passages] == [
        "Returns guide",
        "Returns guide › Refunds",
        "Returns guide › Refunds",
        "Returns guide › Refunds › Store credit",
        "Returns guide › Damaged items",
    ]
    assert passages[0].text == sentences("returns", 3)
    assert passages[1].text == sentences("refunds", 17)  # 119 words: the next one would pass 200
    assert "# not a heading" in passages[4].text


def test_it_cuts_a_long_paragraph_between_sentences_and_never_leaves_a_scrap():
    passages = split_passages("Shipping", sentences("shipping", 70))  # 490 words, one paragraph
    sizes = [word_count(p.text) for p in passages]
    assert sum(sizes) == 490
    assert all(size <= MAX_WORDS for size in sizes[:-1])
    assert min(sizes) >= 80
    assert all(p.text.endswith("today.") for p in passages)


def test_it_counts_each_chinese_character_as_a_word():
    passages = split_passages("退货", "退货政策。" * 100)  # 500 characters
    assert len(passages) == 3
    assert all(word_count(p.text) <= MAX_WORDS + 80 for p in passages)
    assert "".join(p.text for p in passages) == "退货政策。" * 100


USING = "Type the card's code at checkout."


def test_it_gives_the_bot_faq_entries_and_article_passages_in_separate_id_spaces(site):
    article = Article.objects.create(
        site=site,
        title="Gift cards",
        body=f"## Buying\n\n{sentences('buying', 5)}\n\n## Using\n\n{USING}",
    )
    Article.objects.create(site=site, title="Hidden", body="Secret.", enabled=False)
    entries = site_knowledge_entries(site)
    faq_ids = set(FaqEntry.objects.filter(site=site).values_list("id", flat=True))
    assert {e.id for e in entries if e.id < PASSAGE_ID_BASE} == faq_ids
    passages = [e for e in entries if e.id >= PASSAGE_ID_BASE]
    assert [p.question for p in passages] == ["Gift cards › Buying", "Gift cards › Using"]
    assert [entry_source(p.id).pk for p in passages] == [article.pk, article.pk]
    assert [entry_source(p.id).passage for p in passages] == [0, 1]
    hit, _ = site_knowledge_index(site).search("type the code at checkout", k=1)[0]
    assert hit.answer == USING


# --- Import: each format, bad rows by line ---------------------------------------------------

TOO_LONG = "Why? " * 61  # 305 characters

BAD_FILES = {
    KbFormat.CSV: (
        "question,phrasings,answer,language,tags,enabled\n"
        'Do you sell gift cards?,gift card|voucher,"Yes, from $10.",en,gifts,true\n'
        ",no question here,An answer without a question,en,,\n"
        "What about answers?,,,en,,\n"
        "Parlez-vous français?,,Oui.,fr,,\n"
        f"{TOO_LONG},,Too long.,en,,\n"
        '礼品卡可以退吗？,"礼品卡退款\n退礼品卡",礼品卡不可退换。,zh-hans,礼品卡,\n'
    ),
    KbFormat.JSON: json.dumps(
        [
            {
                "question": "Do you sell gift cards?",
                "phrasings": ["gift card", "voucher"],
                "answer": "Yes, from $10.",
                "tags": ["gifts"],
            },
            {"question": "", "answer": "An answer without a question"},
            {"question": "What about answers?"},
            {"question": "Parlez-vous français?", "answer": "Oui.", "language": "fr"},
            {"question": TOO_LONG, "answer": "Too long."},
            {
                "question": "礼品卡可以退吗？",
                "phrasings": ["礼品卡退款", "退礼品卡"],
                "answer": "礼品卡不可退换。",
                "language": "zh-hans",
                "tags": ["礼品卡"],
            },
        ],
        ensure_ascii=False,
        indent=None,
    ).replace("}, {", "},\n{"),  # one object per line: item n is on line n
    KbFormat.MARKDOWN: "\n".join(
        [
            "## Do you sell gift cards?",  # line 1
            "Phrasings:",
            "- gift card",
            "- voucher",
            "",
            "Yes, from $10.",
            "",
            "Tags: gifts",
            "##",  # line 9
            "An answer without a question",
            "## What about answers?",  # line 11
            "Language: en",
            "## Parlez-vous français?",  # line 13
            "Oui.",
            "Language: fr",
            f"## {TOO_LONG}",  # line 16
            "Too long.",
            "## 礼品卡可以退吗？",  # line 18
            "Phrasings:",
            "- 礼品卡退款",
            "- 退礼品卡",
            "礼品卡不可退换。",
            "Language: zh-hans",
            "Tags: 礼品卡",
        ]
    ),
}
BAD_LINES = {
    KbFormat.CSV: [3, 4, 5, 6],
    KbFormat.JSON: [2, 3, 4, 5],
    KbFormat.MARKDOWN: [9, 11, 13, 16],
}


@pytest.mark.parametrize("fmt", list(KbFormat))
def test_it_imports_the_good_rows_and_reports_each_bad_one_by_line(site, fmt):
    report = knowledge_import(site=site, text=BAD_FILES[fmt], fmt=fmt)
    assert [(e.line, e.reason.split(" (")[0]) for e in report.errors] == list(
        zip(
            BAD_LINES[fmt],
            ["missing question", "missing answer", "unknown language 'fr'", "question too long"],
            strict=True,
        )
    )
    assert (report.created, report.updated) == (2, 0)
    gift = FaqEntry.objects.get(site=site, question="Do you sell gift cards?")
    assert (gift.phrasing_list, gift.answer, gift.language, gift.tags, gift.enabled) == (
        ["gift card", "voucher"],
        "Yes, from $10.",
        "en",
        "gifts",
        True,
    )
    chinese = FaqEntry.objects.get(site=site, question="礼品卡可以退吗？")
    assert (chinese.phrasing_list, chinese.language, chinese.tags) == (
        ["礼品卡退款", "退礼品卡"],
        "zh-hans",
        "礼品卡",
    )


def test_it_keeps_the_rows_before_malformed_csv_and_json_and_names_the_line(site):
    csv_text = 'question,answer\nFirst?,One.\n"Second?,Two.\n'
    report = knowledge_import(site=site, text=csv_text, fmt=KbFormat.CSV)
    assert [str(e) for e in report.errors] == [
        "line 3: malformed CSV at line 3: unexpected end of data"
    ]
    json_text = '[\n{"question": "Third?", "answer": "3"},\n{"question": "Fourth?" "answer"}\n]'
    report_json = knowledge_import(site=site, text=json_text, fmt=KbFormat.JSON)
    assert [str(e) for e in report_json.errors] == [
        "line 3: malformed JSON at line 3: Expecting ',' delimiter"
    ]
    assert {"First?", "Third?"} <= set(FaqEntry.objects.values_list("question", flat=True))
    missing_column = knowledge_import(site=site, text="question,reply\nQ,A\n", fmt=KbFormat.CSV)
    assert [str(e) for e in missing_column.errors] == [
        "line 1: missing column(s): answer (header is required)"
    ]


def test_it_reports_the_second_of_two_rows_with_the_same_question(site):
    text = "question,answer\nHello?,One.\nhello? ,Two.\n"
    report = knowledge_import(site=site, text=text, fmt=KbFormat.CSV)
    assert [str(e) for e in report.errors] == ["line 3: same question and language as line 2"]


def test_it_updates_entries_in_place_when_the_same_file_comes_again(site):
    text = BAD_FILES[KbFormat.JSON]
    knowledge_import(site=site, text=text, fmt=KbFormat.JSON)
    ids = sorted(FaqEntry.objects.values_list("id", flat=True))
    again = knowledge_import(site=site, text=text, fmt=KbFormat.JSON)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    edited = text.replace("Yes, from $10.", "Yes, from $5.")
    third = knowledge_import(site=site, text=edited, fmt=KbFormat.JSON)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 1)
    assert sorted(FaqEntry.objects.values_list("id", flat=True)) == ids
    assert FaqEntry.objects.get(question="Do you sell gift cards?").answer == "Yes, from $5."


def test_it_replaces_entries_missing_from_the_file_only_when_every_row_is_good(site):
    good = '[{"question": "Only this?", "answer": "Yes."}]'
    bad = '[{"question": "Only this?", "answer": "Yes."}, {"question": "No answer"}]'
    refused = knowledge_import(site=site, text=bad, fmt=KbFormat.JSON, replace=True)
    assert refused.replace_skipped and refused.deleted == 0
    assert FaqEntry.objects.filter(site=site).count() == 5
    report = knowledge_import(site=site, text=good, fmt=KbFormat.JSON, replace=True)
    assert report.deleted == 4
    assert list(FaqEntry.objects.filter(site=site).values_list("question", flat=True)) == [
        "Only this?"
    ]


def test_it_reads_the_demo_faq_file(other_site):
    report = knowledge_import(
        site=other_site, text=DEMO_FAQ.read_text(encoding="utf-8"), fmt=KbFormat.JSON
    )
    assert report.errors == []
    assert report.created == len(json.loads(DEMO_FAQ.read_text(encoding="utf-8")))


# --- Round trip ------------------------------------------------------------------------------


def tricky_entries(site: Site) -> list[FaqEntry]:
    """Chinese text, a lone phrasing with "|", answers with paragraphs and look-alike lines."""
    return [
        FaqEntry.objects.create(
            site=site,
            question="运费是多少？",
            phrasings="包邮吗\n邮费多少钱",
            answer='订单满 $50 包邮。\n\n否则运费 $4.95，"偏远地区"另计。',
            language="zh-hans",
            tags="运费, 配送",
        ),
        FaqEntry.objects.create(
            site=site,
            question="Can I pay with PayPal | Apple Pay?",
            phrasings="paypal|apple pay",
            answer="Yes.\r\n\r\n## Not a heading\r\nTags: not tags\r\nLanguage: zh-hans",
            language="en",
            enabled=False,
        ),
        FaqEntry.objects.create(
            site=site,
            question="Phrasings: a question that looks like markup, with, commas",
            answer="Phrasings:\n- not a phrasing\n\n\\## already escaped",
            language="en",
            tags="odd",
        ),
    ]


def entry_fields(entries: Sequence[FaqEntry]) -> list[tuple[object, ...]]:
    return [
        (
            e.question,
            e.phrasing_list,
            e.answer.replace("\r\n", "\n"),
            e.language,
            e.tags,
            e.enabled,
        )
        for e in entries
    ]


@pytest.mark.parametrize("fmt", list(KbFormat))
def test_it_round_trips_every_format_without_loss(other_site, fmt):
    source = Site.objects.create(name="Source")
    originals = tricky_entries(source)
    exported = knowledge_export(entries=site_faq_entries(source), fmt=fmt)

    report = knowledge_import(site=other_site, text=exported, fmt=fmt)
    assert report.errors == [] and report.created == len(originals)
    copies = list(site_faq_entries(other_site))
    assert entry_fields(copies) == entry_fields(originals)
    assert knowledge_export(entries=copies, fmt=fmt) == exported

    again = knowledge_import(site=source, text=exported, fmt=fmt)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(originals))


# --- Management commands ---------------------------------------------------------------------


def test_it_exports_and_imports_with_the_management_commands(site, other_site, tmp_path, capsys):
    path = tmp_path / "acme.md"
    call_command("export_kb", site.key, "-o", str(path))
    assert path.read_text(encoding="utf-8").startswith("## How long does shipping take?")

    call_command("import_kb", other_site.key, str(path))
    assert "4 created" in capsys.readouterr().out
    assert entry_fields(site_faq_entries(other_site)) == entry_fields(site_faq_entries(site))

    call_command("export_kb", site.key, "--format", "csv")
    assert capsys.readouterr().out.startswith("\ufeffquestion,phrasings,answer")


def test_it_imports_the_good_rows_then_fails_the_command_listing_the_bad(site, tmp_path, capsys):
    path = tmp_path / "faq.csv"
    path.write_text(BAD_FILES[KbFormat.CSV], encoding="utf-8")
    with pytest.raises(CommandError, match="4 row"):
        call_command("import_kb", site.key, str(path))
    output = capsys.readouterr()
    assert "line 5: unknown language 'fr'" in output.err
    assert "2 created" in output.out
    assert FaqEntry.objects.filter(question="Do you sell gift cards?").exists()


def test_it_refuses_an_unknown_site_or_format(site, tmp_path):
    with pytest.raises(CommandError, match="No site"):
        call_command("import_kb", "nope", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="--format"):
        call_command("import_kb", site.key, str(tmp_path / "faq.txt"))


# --- Admin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "fmt"),
    [("export_csv", KbFormat.CSV), ("export_json", KbFormat.JSON), ("export_markdown", "md")],
)
def test_it_downloads_the_selected_entries_from_the_admin(client, admin, site, action, fmt):
    client.force_login(admin)
    chosen = list(FaqEntry.objects.filter(site=site).order_by("pk")[:2])
    response = client.post(
        reverse("admin:chat_faqentry_changelist"),
        {"action": action, "_selected_action": [e.pk for e in chosen]},
    )
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="faq-entries.{fmt}"'
    parsed = formats.parse(response.content.decode("utf-8"), KbFormat(fmt))
    assert [row.question for row in parsed.rows] == [e.question for e in chosen]


def test_it_downloads_a_whole_sites_faq_from_the_site_admin(client, admin, site):
    client.force_login(admin)
    page = client.get(reverse("admin:chat_site_change", args=[site.pk])).content.decode()
    url = reverse("admin:chat_site_export_kb", args=[site.pk, "json"])
    assert url in page
    rows = json.loads(client.get(url).content)
    assert [r["question"] for r in rows] == [e.question for e in site_faq_entries(site)]


def test_it_imports_an_uploaded_file_in_the_admin_and_lists_the_bad_rows(client, admin, site):
    client.force_login(admin)
    changelist = client.get(reverse("admin:chat_faqentry_changelist")).content.decode()
    assert reverse("admin:chat_faqentry_import") in changelist
    upload = SimpleUploadedFile("faq.md", BAD_FILES[KbFormat.MARKDOWN].encode("utf-8"))
    response = client.post(
        reverse("admin:chat_faqentry_import"), {"site": site.pk, "file": upload, "format": ""}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "2 created, 0 updated" in page
    assert "line 13: unknown language" in page
    assert FaqEntry.objects.filter(site=site, question="礼品卡可以退吗？").exists()


def test_it_refuses_an_upload_that_is_not_utf8(client, admin, site):
    client.force_login(admin)
    upload = SimpleUploadedFile("faq.csv", "question,answer\nÉté?,Oui\n".encode("latin-1"))
    response = client.post(reverse("admin:chat_faqentry_import"), {"site": site.pk, "file": upload})
    assert "not UTF-8" in response.content.decode()
    assert not FaqEntry.objects.filter(question="Été?").exists()


def test_it_keeps_agents_out_of_the_admin_import(client, alice):
    client.force_login(alice.user)
    response = client.get(reverse("admin:chat_faqentry_import"))
    assert response.status_code == 302  # to the admin login: alice is not staff


# --- Reindexing ------------------------------------------------------------------------------

GIFT_CARD = {
    "question": "Do you sell gift cards?",
    "phrasings": "gift voucher",
    "answer": "Yes, from $10.",
    "language": "en",
    "tags": "",
    "enabled": "on",
}


def test_it_reindexes_after_commit_when_the_admin_adds_an_entry_never_during_the_request(
    client, admin, site, django_capture_on_commit_callbacks
):
    client.force_login(admin)
    before = site_knowledge_key(site)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("admin:chat_faqentry_add"), {**GIFT_CARD, "site": site.pk})
    assert response.status_code == 302
    after = site_knowledge_key(site)
    assert after != before
    built: list[int] = []
    # Not built during the request: looking the new key up before the task runs builds it.
    bots.clear_index_cache()
    bots.index_for(after, lambda: built.append(1) or site_knowledge_entries(site))
    assert built == [1]

    bots.clear_index_cache()
    assert len(callbacks) == 1
    callbacks[0]()  # the transaction commits: kb_reindex runs (eagerly)
    index = bots.index_for(after, refuse_to_build)
    entry, confidence = index.search("can I buy a gift voucher?", k=1)[0]
    assert entry.question == "Do you sell gift cards?" and confidence > 0.45


def test_it_reindexes_when_the_admin_edits_deletes_or_toggles_entries(
    client, admin, site, django_capture_on_commit_callbacks
):
    client.force_login(admin)
    edited, toggled, deleted, bulk_deleted = FaqEntry.objects.filter(site=site)[:4]
    changes = [
        lambda: client.post(
            reverse("admin:chat_faqentry_change", args=[edited.pk]),
            {**GIFT_CARD, "site": site.pk},
        ),
        lambda: client.post(
            reverse("admin:chat_faqentry_changelist"),
            {
                "form-TOTAL_FORMS": "1",
                "form-INITIAL_FORMS": "1",
                "form-0-id": toggled.pk,
                "form-0-enabled": "",
                "_save": "Save",
            },
        ),
        lambda: client.post(
            reverse("admin:chat_faqentry_delete", args=[deleted.pk]), {"post": "yes"}
        ),
        lambda: client.post(
            reverse("admin:chat_faqentry_changelist"),
            {"action": "delete_selected", "_selected_action": [bulk_deleted.pk], "post": "yes"},
        ),
    ]
    for change in changes:
        before = site_knowledge_key(site)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert change().status_code == 302
        assert len(callbacks) == 1
        assert site_knowledge_key(site) != before
        bots.index_for(site_knowledge_key(site), refuse_to_build)


def test_it_reindexes_after_an_import_and_a_new_article(
    client, admin, site, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        knowledge_import(site=site, text=BAD_FILES[KbFormat.CSV], fmt=KbFormat.CSV)
    assert len(callbacks) == 1
    index = bots.index_for(site_knowledge_key(site), refuse_to_build)
    assert index.search("礼品卡退款", k=1)[0][0].question == "礼品卡可以退吗？"

    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(
            reverse("admin:chat_article_add"),
            {
                "site": site.pk,
                "title": "Loyalty points",
                "body": "## Earning\n\nEvery dollar earns one loyalty point.",
                "language": "en",
                "tags": "",
                "enabled": "on",
            },
        )
    assert len(callbacks) == 1
    index = bots.index_for(site_knowledge_key(site), refuse_to_build)
    assert index.search("how do I earn loyalty points?", k=1)[0][0].question == (
        "Loyalty points › Earning"
    )


def test_it_does_not_reindex_when_nothing_changed_or_the_import_rolled_back(
    site, django_capture_on_commit_callbacks
):
    text = knowledge_export(entries=site_faq_entries(site), fmt=KbFormat.JSON)
    with django_capture_on_commit_callbacks() as callbacks:
        knowledge_import(site=site, text=text, fmt=KbFormat.JSON)
        with pytest.raises(RuntimeError), transaction.atomic():
            knowledge_import(site=site, text=BAD_FILES[KbFormat.JSON], fmt=KbFormat.JSON)
            raise RuntimeError("rolled back")
    assert callbacks == []


def test_site_keys_never_start_with_a_dash_so_commands_take_them_as_arguments():
    assert not [key for key in (new_site_key() for _ in range(2000)) if key.startswith("-")]
