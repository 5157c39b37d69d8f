"""Labels: per site (admin), put on and taken off in the console, and filtering the lists."""

from __future__ import annotations

import re

import pytest

from chat.models import Label
from tests.queueing import queued

pytestmark = pytest.mark.django_db


def listed(page: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-conversation-id="(\d+)"', page)}


def test_an_agent_labels_a_conversation_and_filters_the_queue_by_it(client, site, alice, support):
    vip = Label.objects.create(site=site, name="VIP", color="#b91c1c")
    ann, ben = queued(site, name="Ann"), queued(site, name="Ben")
    client.force_login(alice.user)

    fragment = client.post(f"/console/c/{ann.pk}/labels/", {"label": vip.pk, "action": "add"})
    assert fragment.status_code == 200 and f'data-label-id="{vip.pk}"' in fragment.content.decode()
    assert list(ann.labels.all()) == [vip]

    assert listed(client.get("/console/").content.decode()) == {ann.pk, ben.pk}
    assert listed(client.get(f"/console/?label={vip.pk}").content.decode()) == {ann.pk}
    assert listed(client.get(f"/console/queue/?label={vip.pk}").content.decode()) == {ann.pk}
    assert listed(client.get("/console/?label=nonsense").content.decode()) == {ann.pk, ben.pk}

    client.post(f"/console/c/{ann.pk}/labels/", {"label": vip.pk, "action": "remove"})
    assert not ann.labels.exists()
    assert listed(client.get(f"/console/?label={vip.pk}").content.decode()) == set()


def test_it_refuses_labels_of_another_site_and_outsiders(
    client, site, other_site, alice, charlie, support
):
    theirs = Label.objects.create(site=other_site, name="Globex")
    ours = Label.objects.create(site=site, name="Refund")
    ann = queued(site, name="Ann")
    client.force_login(alice.user)
    for label in [theirs.pk, 999, "x", ""]:
        response = client.post(f"/console/c/{ann.pk}/labels/", {"label": label})
        assert response.status_code == 400
    assert client.get(f"/console/c/{ann.pk}/labels/").status_code == 405
    client.force_login(charlie.user)
    assert client.post(f"/console/c/{ann.pk}/labels/", {"label": ours.pk}).status_code == 404
    assert not ann.labels.exists()
    # Charlie's filter bar shows only his own site's labels.
    page = client.get("/console/").content.decode()
    assert "Globex" in page and "Refund" not in page


def test_admins_manage_labels_per_site(client, admin, site):
    client.force_login(admin)
    client.post("/admin/chat/label/add/", {"site": site.pk, "name": "VIP", "color": "#000000"})
    duplicate = client.post(
        "/admin/chat/label/add/", {"site": site.pk, "name": "VIP", "color": "#000000"}
    )
    assert duplicate.status_code == 200
    assert list(Label.objects.values_list("name", flat=True)) == ["VIP"]
