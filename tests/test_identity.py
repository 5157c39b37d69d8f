"""Identity verification: a customer the site's backend signed sees their history on any
device; an unsigned, forged or expired identity is refused and links nothing."""

from __future__ import annotations

import time

import jwt
import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Site, Visitor
from chat.services.identity import identity_hash, identity_jwt
from tests.browser import browsers  # noqa: F401  (fixture)
from tests.conftest import Client, widget_connect, widget_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def verified_site(site: Site) -> Site:
    """Acme, answering through its queue (no bot), with identity verification required."""
    site.identity_verification = Site.IdentityVerification.REQUIRED
    site.bot_enabled = False
    site.save()
    return site


async def new_device(site: Site) -> Client:
    """A browser that never saw the widget: no token, a fresh anonymous visitor."""
    client, connected, _ = await widget_connect(site)
    assert connected
    ready = await client.expect("session.ready")
    assert ready["conversation"] is None
    return client


async def identify(client: Client, **frame) -> dict:
    """The answer to one ``visitor.identify``; live frames stay in the backlog."""
    await client.send(type="visitor.identify", **frame)
    skipped = []
    try:
        while (answer := await client.receive())["type"] not in {"visitor.identified", "error"}:
            skipped.append(answer)
        return answer
    finally:
        client.backlog = skipped + client.backlog


async def say(client: Client, body: str, conversation_id: int | None = None) -> dict:
    frame = {"type": "message.create", "client_id": body[:60], "body": body}
    if conversation_id:
        frame["conversation_id"] = conversation_id
    await client.send(**frame)
    return await client.expect("message.ack", client_id=body[:60])


def signed(site: Site, external_id: str = "cust-42", **extra) -> dict:
    return {"external_id": external_id, "hash": identity_hash(site=site, external_id=external_id)}


async def test_it_shows_a_verified_customer_their_history_on_a_second_device(verified_site):
    laptop = await new_device(verified_site)
    identified = await identify(
        laptop, name="Ann", email="ann@example.com", **signed(verified_site)
    )
    assert identified["type"] == "visitor.identified" and identified["verified"] is True
    ack = await say(laptop, "Where is my parcel?")

    phone = await new_device(verified_site)
    on_phone = await identify(phone, **signed(verified_site))
    assert on_phone["verified"] is True
    assert on_phone["visitor"]["id"] == identified["visitor"]["id"]
    assert on_phone["conversation"]["conversation_id"] == ack["conversation_id"]
    await phone.send(type="conversation.sync", conversation_id=ack["conversation_id"], after_seq=0)
    message = await phone.expect("message.created")
    assert message["body"] == "Where is my parcel?"

    # The token the phone was given opens the same customer next time, without a new proof.
    again = await widget_for(
        await database_sync_to_async(Visitor.objects.get)(public_id=on_phone["visitor"]["id"])
    )
    await again.send(type="conversation.sync", conversation_id=ack["conversation_id"])
    assert (await again.expect("message.created"))["body"] == "Where is my parcel?"

    visitor = await database_sync_to_async(Visitor.objects.get)(external_id="cust-42")
    assert (visitor.name, visitor.email) == ("Ann", "ann@example.com")
    for client in (laptop, phone, again):
        await client.close()


async def test_it_moves_a_customers_anonymous_chat_to_them_when_they_sign_in(verified_site):
    phone = await new_device(verified_site)
    await identify(phone, **signed(verified_site))  # known from an earlier visit

    laptop = await new_device(verified_site)
    ack = await say(laptop, "Question before signing in")
    identified = await identify(laptop, **signed(verified_site))
    assert (
        identified["visitor"]["id"]
        == (await identify(phone, **signed(verified_site)))["visitor"]["id"]
    )
    assert identified["conversation"]["conversation_id"] == ack["conversation_id"]

    def owner() -> str | None:
        return Conversation.objects.get(pk=ack["conversation_id"]).visitor.external_id

    assert await database_sync_to_async(owner)() == "cust-42"
    await phone.send(type="conversation.sync", conversation_id=ack["conversation_id"])
    assert (await phone.expect("message.created"))["body"] == "Question before signing in"
    await phone.close()
    await laptop.close()


async def test_it_refuses_a_forged_hash_and_links_nothing(verified_site):
    owner = await new_device(verified_site)
    await identify(owner, **signed(verified_site))
    ack = await say(owner, "My address is 1 Main St")

    attacker = await new_device(verified_site)
    forged = await identify(attacker, external_id="cust-42", hash="0" * 64)
    assert forged["type"] == "error" and forged["code"] == "identity_invalid"
    assert forged["ref"] == "visitor.identify"
    other_secret = identity_hash(site=Site(identity_secret="not-the-secret"), external_id="cust-42")
    wrong_key = await identify(attacker, external_id="cust-42", hash=other_secret)
    assert wrong_key["code"] == "identity_invalid"
    await attacker.send(type="conversation.sync", conversation_id=ack["conversation_id"])
    assert (await attacker.expect("error"))["code"] == "not_found"
    assert await database_sync_to_async(Visitor.objects.filter(external_id="cust-42").count)() == 1
    # The socket keeps serving: the attacker is just an anonymous visitor.
    await say(attacker, "hello")
    await owner.close()
    await attacker.close()


async def test_it_refuses_an_unsigned_identity_when_the_site_requires_signatures(verified_site):
    client = await new_device(verified_site)
    refused = await identify(client, external_id="cust-42", name="Ann")
    assert refused["code"] == "identity_required"
    assert "signed" in refused["message"]
    assert not await database_sync_to_async(Visitor.objects.filter(name="Ann").exists)()
    await client.close()


async def test_it_takes_an_unsigned_identity_as_contact_details_only_when_optional(site):
    site.identity_verification = Site.IdentityVerification.OPTIONAL
    await database_sync_to_async(site.save)()
    first = await new_device(site)
    answer = await identify(first, external_id="cust-7", name="Ann", email="ann@example.com")
    assert answer["type"] == "visitor.identified" and answer["verified"] is False
    second = await new_device(site)
    other = await identify(second, external_id="cust-7")
    assert other["visitor"]["id"] != answer["visitor"]["id"]  # never linked
    visitor = await database_sync_to_async(Visitor.objects.get)(public_id=answer["visitor"]["id"])
    assert (visitor.name, visitor.email, visitor.external_id) == ("Ann", "ann@example.com", "")
    await first.close()
    await second.close()


async def test_it_never_links_devices_when_verification_is_off(site):
    first = await new_device(site)
    one = await identify(first, **signed(site))
    second = await new_device(site)
    two = await identify(second, **signed(site))
    assert one["verified"] is two["verified"] is False
    assert one["visitor"]["id"] != two["visitor"]["id"]
    await first.close()
    await second.close()


async def test_it_accepts_a_short_lived_jwt_and_refuses_expired_or_forged_ones(verified_site):
    laptop = await new_device(verified_site)
    token = identity_jwt(site=verified_site, external_id="cust-9", name="Ann", lifetime=300)
    identified = await identify(laptop, jwt=token)
    assert identified["verified"] is True
    visitor = await database_sync_to_async(Visitor.objects.get)(
        public_id=identified["visitor"]["id"]
    )
    assert (visitor.external_id, visitor.name) == ("cust-9", "Ann")

    secret = verified_site.identity_secret
    now = int(time.time())
    refusals = {
        "expired": jwt.encode({"sub": "cust-9", "exp": now - 120}, secret, algorithm="HS256"),
        "wrong secret": jwt.encode({"sub": "cust-9", "exp": now + 60}, "x" * 40, "HS256"),
        "no exp": jwt.encode({"sub": "cust-9"}, secret, algorithm="HS256"),
        "a year long": jwt.encode({"sub": "cust-9", "exp": now + 10**8}, secret, "HS256"),
        "alg none": jwt.encode({"sub": "cust-9", "exp": now + 60}, None, algorithm="none"),
        "garbage": "not.a.jwt",
    }
    phone = await new_device(verified_site)
    codes = {}
    for name, bad in refusals.items():
        codes[name] = (await identify(phone, jwt=bad))["code"]
    assert codes == {
        "expired": "identity_expired",
        "wrong secret": "identity_invalid",
        "no exp": "identity_invalid",
        "a year long": "identity_invalid",
        "alg none": "identity_invalid",
        "garbage": "identity_invalid",
    }
    mismatch = await identify(phone, external_id="cust-10", jwt=token)
    assert mismatch["code"] == "identity_invalid"
    assert await database_sync_to_async(Visitor.objects.filter(external_id="cust-9").count)() == 1
    await laptop.close()
    await phone.close()


async def test_it_gives_a_browser_a_new_visitor_when_another_customer_signs_in(verified_site):
    shared = await new_device(verified_site)
    await identify(shared, **signed(verified_site, "cust-1"))
    ack = await say(shared, "cust-1's secret question")
    switched = await identify(shared, **signed(verified_site, "cust-2"))
    assert switched["conversation"] is None
    await shared.send(type="conversation.sync", conversation_id=ack["conversation_id"])
    assert (await shared.expect("error"))["code"] == "not_found"
    started = await say(shared, "cust-2 here")
    assert started["conversation_id"] != ack["conversation_id"]
    await shared.close()


async def test_it_answers_malformed_identify_frames_with_a_typed_error(verified_site):
    client = await new_device(verified_site)
    for frame in [
        {},  # neither an id nor a token
        {"external_id": ""},
        {"external_id": 42, "hash": "ab"},
        {"external_id": "x" * 201, "hash": "ab"},
        {"external_id": "a", "hash": "ab", "admin": True},
    ]:
        answer = await identify(client, **frame)
        assert answer["type"] == "error"
        assert answer["code"] in {"invalid_frame", "identity_invalid"}
    await client.close()


async def test_it_keeps_two_anonymous_visitors_apart(site):
    ann = await new_device(site)
    ben = await new_device(site)
    ack = await say(ann, "Ann's private question")
    await ben.send(type="conversation.sync", conversation_id=ack["conversation_id"])
    assert (await ben.expect("error"))["code"] == "not_found"
    assert not [f for f in await ben.drain() if f["type"] == "message.created"]
    await ann.close()
    await ben.close()


# --- In real browsers: the loader's script tag and its JS API ------------------------------


def shop_page(base: str, site: Site, **user: str) -> str:
    attributes = "".join(f' data-user-{key}="{value}"' for key, value in user.items())
    return (
        "<!doctype html><html><head><title>Shop</title><link rel='icon' href='data:,'></head>"
        "<body><h1>Shop</h1>"
        f'<script src="{base}/static/widget/loader.js" data-site="{site.key}"{attributes} async>'
        "</script></body></html>"
    )


def open_chat(browser, url: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    from tests.browser import wait

    browser.get(url)
    wait(browser).until(ec.element_to_be_clickable((By.ID, "helpdesk-launcher"))).click()
    wait(browser).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))


def widget_state(browser, key: str):
    return browser.execute_script(f"return window.HelpdeskWidget && window.HelpdeskWidget.{key}")


@pytest.mark.browser
def test_it_shows_the_same_chat_in_a_second_browser_with_the_same_signed_identity(browsers):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec

    from tests.browser import wait
    from tests.hostpage import host_pages
    from tests.live import daphne_server

    site = Site.objects.create(
        name="Acme",
        identity_verification=Site.IdentityVerification.REQUIRED,
        bot_enabled=False,
    )
    good = identity_hash(site=site, external_id="cust-42")
    pages: dict[str, str] = {}
    with daphne_server() as base, host_pages(pages) as shop:
        site.allowed_origins = shop
        site.save()
        pages["/tag"] = shop_page(base, site, id="cust-42", name="Ann", hash=good)
        pages["/plain"] = shop_page(base, site)
        pages["/forged"] = shop_page(base, site, id="cust-42", hash="0" * 64)

        laptop = browsers()
        open_chat(laptop, f"{shop}/tag")
        wait(laptop).until(lambda b: widget_state(b, "verified") is True)
        box = wait(laptop).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("Has my order shipped?", Keys.ENTER)
        wait(laptop).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--visitor[data-seq]"))
        )

        phone = browsers()  # another profile: no token, no storage in common
        phone.get(f"{shop}/plain")
        wait(phone).until(ec.element_to_be_clickable((By.ID, "helpdesk-launcher")))
        phone.execute_script("window.Helpdesk.identify({id: 'cust-42', hash: arguments[0]});", good)
        phone.find_element(By.ID, "helpdesk-launcher").click()
        wait(phone).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "helpdesk-frame")))
        wait(phone).until(
            ec.text_to_be_present_in_element((By.ID, "messages"), "Has my order shipped?")
        )
        assert widget_state(phone, "verified") is True
        customer = widget_state(phone, "visitorId")

        phone.switch_to.default_content()  # the customer signs out of the shop
        phone.execute_script("window.Helpdesk.logout();")
        phone.switch_to.frame("helpdesk-frame")
        wait(phone).until(lambda b: widget_state(b, "visitorId") not in (None, customer))
        assert "Has my order shipped?" not in phone.find_element(By.ID, "messages").text
        assert widget_state(phone, "verified") is False

        stranger = browsers()
        open_chat(stranger, f"{shop}/forged")
        wait(stranger).until(lambda b: widget_state(b, "identityError") == "identity_invalid")
        notice = wait(stranger).until(ec.visibility_of_element_located((By.ID, "notice")))
        assert "signature" in notice.text
        assert "Has my order shipped?" not in stranger.find_element(By.ID, "messages").text

        errors = [
            entry
            for b in (laptop, phone, stranger)
            for entry in b.get_log("browser")
            if entry["level"] == "SEVERE"
        ]
        assert errors == []


@pytest.mark.django_db
def test_it_shows_agents_the_verified_customer_id_in_the_console(client, site, alice):
    ann = Visitor.objects.create(site=site, name="Ann", external_id="cust-42")
    conversation = Conversation.objects.create(site=site, visitor=ann, status="waiting")
    client.force_login(alice.user)
    page = client.get(f"/console/c/{conversation.pk}/").content.decode()
    assert "cust-42" in page and "verified" in page
