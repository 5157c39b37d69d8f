"""Notifications in a real browser: Alice's console registers the service worker and
subscribes to Web Push, a customer writes while her tab is hidden, the title counts it, the
page shows a browser notification, and the push (through the local push service) makes the
service worker show its own."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from websockets.sync.client import connect

from chat.models import Conversation, PushSubscription
from chat.services.visitors import visitor_token
from chat.transports import vapid_public_key
from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.live import daphne_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Headless Chromium has no push service to subscribe with: this stands in for
# PushManager.subscribe, answering with a subscription at our local push service (whose keys
# the test holds), and remembers the application server key the page subscribed with.
STUB_PUSH_MANAGER = """
(() => {
  const sub = %s;
  let current = null;
  const subscription = {
    endpoint: sub.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true },
    toJSON() { return { endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }; },
    unsubscribe: async () => { current = null; return true; },
  };
  if (!window.PushManager) return;
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    window.__applicationServerKey = btoa(String.fromCharCode(...key))
      .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
    current = subscription;
    return subscription;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();
"""

# Which sounds the page played (headless Chromium has no speakers to listen to).
RECORD_SOUNDS = """
window.__played = [];
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  window.__played.push(new URL(this.src).pathname);
  return play.call(this);
};
"""

NOTIFICATIONS = """
const done = arguments[arguments.length - 1];
navigator.serviceWorker.getRegistration("/")
  .then((r) => (r ? r.getNotifications() : []))
  .then((list) => list.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })))
  .then(done)
  .catch((e) => done(String(e)));
"""


def poll(condition: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def allow_push(driver: WebDriver, origin: str, subscription: dict[str, Any]) -> None:
    """Notifications allowed for ``origin``, and PushManager answering with ``subscription``."""
    driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": origin, "permissions": ["notifications"]}
    )
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": STUB_PUSH_MANAGER % json.dumps(subscription)},
    )


def tab_title(driver: WebDriver, handle: str) -> str:
    targets = driver.execute_cdp_cmd("Target.getTargets", {})["targetInfos"]
    return next(t["title"] for t in targets if t["targetId"] == handle)


def deliver_push(driver: WebDriver, origin: str, data: str) -> None:
    """Hand a push message to the service worker, as the push service would have."""
    driver.execute_cdp_cmd("ServiceWorker.enable", {})
    # Registration ids count up per profile; this browser's profile is new.
    for registration_id in map(str, range(10)):
        try:
            driver.execute_cdp_cmd(
                "ServiceWorker.deliverPushMessage",
                {"origin": origin, "registrationId": registration_id, "data": data},
            )
            return
        except WebDriverException:  # no such registration: try the next id
            continue
    raise AssertionError("no service worker registration to deliver to")


def test_it_subscribes_the_console_and_notifies_alice_while_her_tab_is_hidden(
    browsers,  # noqa: F811
    push_service,
    settings,
    site,
    alice,
    visitor_a,
):
    settings.SECRET_KEY = "live-test-secret"  # the server's: the visitor's token must verify
    conversation = Conversation.objects.create(
        site=site, visitor=visitor_a, status=Conversation.Status.ASSIGNED, assignee=alice
    )
    subscription = push_service.subscription()
    env = {"VAPID_PRIVATE_KEY": settings.VAPID_PRIVATE_KEY, "HELPDESK_PUBLIC_URL": "http://x"}
    with daphne_server(env) as base:
        agent = browsers()
        allow_push(agent, base, subscription)
        agent.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_SOUNDS})
        agent.get(f"{base}/accounts/login/?next=/console/")
        agent.find_element(By.NAME, "username").send_keys("alice")
        agent.find_element(By.NAME, "password").send_keys("alice", Keys.ENTER)
        wait(agent).until(ec.presence_of_element_located((By.ID, "queue")))

        # The console registered /sw.js and subscribed with the server's key.
        stored = poll(lambda: PushSubscription.objects.filter(agent=alice).first())
        assert stored.endpoint == subscription["endpoint"]
        assert stored.p256dh == subscription["keys"]["p256dh"]
        assert agent.execute_script("return window.__applicationServerKey") == vapid_public_key()
        scope = agent.execute_async_script(
            "const done = arguments[0];navigator.serviceWorker.ready.then((r) => done(r.scope));"
        )
        assert scope == f"{base}/"
        console = agent.current_window_handle
        base_title = agent.title

        agent.switch_to.new_window("tab")  # Alice looks at another tab: the console is hidden
        agent.get(f"{base}/")
        host = base.removeprefix("http://")
        url = f"ws://{host}/ws/widget/v1/?site={site.key}&token={visitor_token(visitor_a)}"
        with connect(url, origin=base) as ws:
            for n, body in enumerate(["Is anyone there?", "My parcel is late"]):
                ws.send(
                    json.dumps(
                        {
                            "type": "message.create",
                            "client_id": f"v{n}",
                            "body": body,
                            "conversation_id": conversation.pk,
                        }
                    )
                )
            poll(lambda: tab_title(agent, console).startswith("(2 new) "))

        # The hidden page showed a browser notification for the reply (through the worker).
        shown = poll(lambda: agent.execute_async_script(NOTIFICATIONS))
        assert [n["tag"] for n in shown] == [f"conversation-{conversation.pk}"]
        assert shown[0]["title"] == "Ann replied"

        # The push reached the push service, signed and encrypted; delivered to the worker,
        # it shows the service worker's own notification in place of the page's (one tag).
        pushes = push_service.wait_for(2)
        assert {p.payload["body"] for p in pushes} == {"Is anyone there?", "My parcel is late"}
        agent.execute_script("return navigator.serviceWorker.ready")
        deliver_push(agent, base, json.dumps(pushes[-1].payload))
        pushed = poll(
            lambda: [n for n in agent.execute_async_script(NOTIFICATIONS) if n["data"].get("kind")]
        )
        assert pushed[0]["data"] == {"kind": "reply", "url": f"/console/c/{conversation.pk}/"}
        assert pushed[0]["body"] == pushes[-1].payload["body"]

        # Back on the console tab, the count is read.
        agent.switch_to.window(console)
        wait(agent).until(lambda d: d.title == base_title)
        assert agent.execute_script("return window.__played") == ["/static/console/notify.wav"] * 2
        errors = [e for e in agent.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
