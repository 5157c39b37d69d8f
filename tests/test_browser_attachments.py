"""Files, typing and "Seen" in real browsers: a customer's widget and Alice's console."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec

from tests.browser import browsers, wait  # noqa: F401  (fixture)
from tests.live import daphne_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOADED_IMAGE = """
const img = document.querySelector(arguments[0]);
return Boolean(img && img.complete && img.naturalWidth > 0);
"""


def sign_in(agent: WebDriver, base: str, username: str) -> None:
    agent.get(f"{base}/accounts/login/?next=/console/")
    agent.find_element(By.NAME, "username").send_keys(username)
    agent.find_element(By.NAME, "password").send_keys(username, Keys.ENTER)
    wait(agent).until(ec.presence_of_element_located((By.ID, "queue")))


def severe_errors(*drivers: WebDriver) -> list[dict[str, object]]:
    return [e for d in drivers for e in d.get_log("browser") if e["level"] == "SEVERE"]


def test_it_carries_files_typing_and_seen_between_widget_and_console(
    browsers,  # noqa: F811
    site,
    alice,
    tmp_path: Path,
):
    site.bot_enabled = False  # straight to the queue
    site.save()
    photo = tmp_path / "damaged parcel.png"
    Image.new("RGB", (800, 600), (30, 120, 200)).save(photo)
    label = tmp_path / "return-label.pdf"
    label.write_bytes(b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n")
    disguised = tmp_path / "invoice.pdf"
    disguised.write_bytes(photo.read_bytes())

    with daphne_server({"MEDIA_ROOT": str(tmp_path / "media")}) as base:
        visitor = browsers()
        visitor.get(f"{base}/widget/{site.key}/")
        box = wait(visitor).until(ec.element_to_be_clickable((By.ID, "body")))
        box.send_keys("My parcel arrived broken", Keys.ENTER)
        wait(visitor).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".msg--visitor[data-seq]"))
        )
        conversation_id = visitor.execute_script("return window.HelpdeskWidget.conversationId")

        # The customer attaches a photo: their own widget shows it (fetched with the token).
        visitor.find_element(By.ID, "file").send_keys(str(photo))
        wait(visitor).until(lambda d: d.execute_script(LOADED_IMAGE, ".msg--visitor .msg__image"))

        # Alice opens the conversation: the photo is a loaded thumbnail, and the customer
        # sees "Seen" under their latest message.
        agent = browsers()
        sign_in(agent, base, "alice")
        agent.get(f"{base}/console/c/{conversation_id}/")
        wait(agent).until(lambda d: d.execute_script(LOADED_IMAGE, "#transcript .msg__image"))
        thumb = agent.find_element(By.CSS_SELECTOR, "#transcript .msg__image")
        assert thumb.get_attribute("alt") == "damaged parcel.png"
        assert agent.execute_script("return arguments[0].naturalWidth", thumb) == 320
        seen = wait(visitor).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--visitor .msg__seen"))
        )
        assert seen.text == "Seen"

        # Typing, both ways.
        agent.find_element(By.ID, "reply-body").send_keys("We are sorry")
        wait(visitor).until(ec.text_to_be_present_in_element((By.ID, "typing"), "Alice is typing"))
        assert visitor.find_element(By.ID, "typing").is_displayed()
        visitor.find_element(By.ID, "body").send_keys("Also the box")
        wait(agent).until(ec.text_to_be_present_in_element((By.ID, "typing"), "is typing"))
        assert agent.find_element(By.ID, "typing").is_displayed()

        # Alice sends a return label: the customer gets it as a download.
        agent.find_element(By.ID, "reply-file").send_keys(str(label))
        link = wait(visitor).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--agent a.msg__file"))
        )
        assert link.get_attribute("download") == "return-label.pdf"
        assert "return-label.pdf" in link.text
        link.click()  # fetched with the visitor's token, then saved from a blob: URL
        wait(visitor).until(lambda d: link.get_attribute("href").startswith("blob:"))

        # The customer's open widget has read it: Alice sees "Seen" under her file.
        wait(agent).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--agent .msg__seen"))
        )

        assert severe_errors(visitor, agent) == []  # no CSP violation, no failed request

        # A refused file: Alice is told why, and nothing is left pending.
        agent.find_element(By.ID, "reply-file").send_keys(str(disguised))
        toast = wait(agent).until(ec.visibility_of_element_located((By.ID, "toast")))
        assert "named like a PDF document but contains a PNG image" in toast.text
        assert agent.find_elements(By.CSS_SELECTOR, "#transcript .msg--pending") == []


# Builds a File from base64 and hands it to the widget the way a paste or a drop would.
GIVE_FILE = """
const [how, name, type, b64] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const data = new DataTransfer();
data.items.add(new File([bytes], name, { type }));
if (how === "paste") {
  document.getElementById("body").dispatchEvent(
    new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
} else {
  document.getElementById("messages").dispatchEvent(
    new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
}
"""


def test_it_shows_the_reason_when_the_widget_refuses_a_file_and_takes_pastes_and_drops(
    browsers,  # noqa: F811
    site,
    tmp_path: Path,
):
    disguised = tmp_path / "cat.png"
    disguised.write_bytes(b"<!DOCTYPE html><script>alert(1)</script>")
    with daphne_server({"MEDIA_ROOT": str(tmp_path / "media")}) as base:
        visitor = browsers()
        visitor.get(f"{base}/widget/{site.key}/")
        wait(visitor).until(lambda d: d.execute_script("return window.HelpdeskWidget.connected"))
        visitor.find_element(By.ID, "file").send_keys(str(disguised))
        notice = wait(visitor).until(ec.visibility_of_element_located((By.ID, "notice")))
        assert "not accepted" in notice.text
        assert visitor.find_elements(By.CSS_SELECTOR, ".msg--failed")

        # A pasted screenshot and a dropped text file are sent like picked ones.
        png = io.BytesIO()
        Image.new("RGB", (64, 48), (10, 200, 90)).save(png, "PNG")
        encoded = base64.b64encode(png.getvalue()).decode()
        visitor.execute_script(GIVE_FILE, "paste", "screenshot.png", "image/png", encoded)
        wait(visitor).until(lambda d: d.execute_script(LOADED_IMAGE, ".msg--visitor .msg__image"))
        notes = base64.b64encode(b"order 1234\n").decode()
        visitor.execute_script(GIVE_FILE, "drop", "notes.txt", "text/plain", notes)
        link = wait(visitor).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, ".msg--visitor a.msg__file"))
        )
        assert link.get_attribute("download") == "notes.txt"
