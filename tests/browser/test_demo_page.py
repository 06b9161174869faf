"""The demo page at /image-pipeline/ in a real browser, against a real service.

A person's path through the page: upload a photo and watch it complete, have a
text file refused, list the owner's media and delete one, on a desktop and on
a phone-sized screen. Screenshots of both are saved in ``test-artifacts/``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import blurhash
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    FilePayload,
    Locator,
    Page,
    Route,
    expect,
)

from tests.service import Service, http

CORPUS = os.environ.get("IMAGE_PIPELINE_CORPUS", "")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 15_000
FILES = "**/image-pipeline/files/**"
LOADED = re.compile(r"\bis-loaded\b")


def photo_bytes() -> bytes:
    """The corpus's 8 MP phone photo when there is a corpus, else a made one."""
    if CORPUS:
        path = Path(CORPUS) / "photos" / "phone-8mp-3264x2448.jpg"
        assert path.is_file(), f"IMAGE_PIPELINE_CORPUS is set but {path} is missing"
        return path.read_bytes()
    size = (1600, 1200)
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.linear_gradient("L").rotate(90).resize(size)
    image = Image.merge("RGB", (red, green, blue))
    ImageDraw.Draw(image).ellipse((900, 250, 1400, 750), fill=(250, 200, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> bytes:
    return photo_bytes()


@pytest.fixture
def page(browser: Browser, service: Service) -> Iterator[Page]:
    yield from open_page(browser, service, DESKTOP)


@pytest.fixture
def phone(browser: Browser, service: Service) -> Iterator[Page]:
    yield from open_page(browser, service, PHONE, is_mobile=True, has_touch=True)


def open_page(
    browser: Browser, service: Service, viewport: Any, **options: Any
) -> Iterator[Page]:
    """The demo page in a fresh context; fails on script errors or CSP reports."""
    context = browser.new_context(viewport=viewport, **options)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", console)
    page.goto(service.url("/image-pipeline/"))
    try:
        yield page
    finally:
        context.close()
    assert not problems, problems


def choose_owner(page: Page, source_type: str) -> str:
    owner = f"browser-{uuid.uuid4().hex[:8]}"
    page.get_by_label(source_type, exact=True).check()
    page.get_by_label("Owner id").fill(owner)
    return owner


def upload(page: Page, name: str, data: bytes, mime: str) -> Locator:
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
    page.locator("#file-input").set_input_files(files=[payload])
    return card_for(page, name)


def card_for(page: Page, name: str) -> Locator:
    return page.locator(".card").filter(has=page.locator(".card-title", has_text=name))


def wait_complete(card: Locator) -> None:
    """The placeholder is painted, then the real image has loaded."""
    expect(card.locator("canvas.placeholder[data-blurhash]")).to_be_attached()
    expect(card.locator("img.result-image")).to_have_class(LOADED)
    expect(card.locator("img.result-image")).to_be_visible()
    expect(card.locator(".state")).to_contain_text("Complete in")


def job_of(service: Service, card: Locator) -> dict[str, Any]:
    job_id = card.get_attribute("data-job-id")
    status, body, _ = http("GET", service.url(f"/image-pipeline/status/{job_id}"))
    assert status == 200
    job: dict[str, Any] = json.loads(body)
    assert job["status"] == "COMPLETE", job
    return job


def assert_srcset_lists_variants(card: Locator, media: dict[str, Any]) -> None:
    image = card.locator("img.result-image")
    srcset = image.get_attribute("srcset") or ""
    for variant in media["variants"]:
        assert f"{variant['url']} {variant['width']}w" in srcset, srcset
    assert image.get_attribute("sizes")
    current = image.evaluate("image => image.currentSrc")
    assert any(current.endswith(v["url"]) for v in media["variants"]), current


def assert_decoder_matches_reference(page: Page, hash_: str) -> None:
    """The page's own BlurHash decoder agrees with blurhash-python's."""
    width, height = 32, 24
    ours = page.evaluate(
        """async ([hash, width, height]) => {
            const module = await import("./static/blurhash.js");
            return Array.from(module.decode(hash, width, height));
        }""",
        [hash_, width, height],
    )
    reference = blurhash.decode(hash_, width, height).convert("RGBA").tobytes()
    assert len(ours) == len(reference)
    difference = sum(abs(a - b) for a, b in zip(ours, reference, strict=True))
    assert difference / len(reference) < 1.0


def test_a_photo_completes_and_a_text_file_is_refused(
    page: Page, service: Service, photo: bytes, artifacts: Path
) -> None:
    owner = choose_owner(page, "default")
    with images_held(page):
        with page.expect_request(FILES):
            card = upload(page, "photo.jpg", photo, "image/jpeg")
        expect(card.locator("canvas.placeholder[data-blurhash]")).to_be_visible()
        expect(card.locator("img.result-image")).not_to_have_class(LOADED)
        card.locator(".frame").screenshot(path=artifacts / "demo-placeholder.png")
    wait_complete(card)
    media = job_of(service, card)["media"]
    assert_result_shown(card, media)
    assert_decoder_matches_reference(page, media["blurhash"])

    refused = choose_by_keyboard(page, "notes.txt", b"hello")
    expect(refused).to_have_attribute("data-state", "REFUSED")
    expect(refused.locator(".state")).to_contain_text("HTTP 415")
    expect(refused.get_by_role("alert")).to_contain_text(
        "not an image type the service accepts"
    )
    expect(refused.locator(".problem-server")).to_contain_text("The service said")

    broken = upload(page, "broken.jpg", photo[:3000], "image/jpeg")
    expect(broken).to_have_attribute("data-state", "REJECTED")
    expect(broken.get_by_role("alert")).to_contain_text("could not be read")
    expect(broken.locator(".json pre")).to_contain_text('"errorCode": "corrupt_image"')

    list_owner_media(page, owner, media["id"])
    page.screenshot(path=artifacts / "demo-desktop.png", full_page=True)
    delete_media(page, owner, media["id"])
    expect(card).to_have_attribute("data-state", "DELETED")
    expect(card.locator(".state")).to_have_text(
        "Deleted from the service after it completed."
    )


def assert_result_shown(card: Locator, media: dict[str, Any]) -> None:
    done = re.compile(r"\bis-done\b")
    expect(card.locator('.steps [data-step="PENDING"]')).to_have_class(done)
    expect(card.locator('.steps [data-step="outcome"]')).to_have_class(done)
    assert_srcset_lists_variants(card, media)
    expect(card.locator(".variants tbody tr")).to_have_count(len(media["variants"]))
    for variant in media["variants"]:
        cell = card.locator(f'.variants td[data-bytes="{variant["bytes"]}"]')
        expect(cell).to_have_count(1)
    expect(card.locator(".facts")).to_contain_text(media["dominantColor"])
    expect(card.locator(".json pre")).to_contain_text(media["id"])


def choose_by_keyboard(page: Page, name: str, data: bytes) -> Locator:
    """Focus the drop zone, press Enter, pick the file in the chooser."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Drop images here or choose files").focus()
        page.keyboard.press("Enter")
    payload: FilePayload = {"name": name, "mimeType": "text/plain", "buffer": data}
    chooser.value.set_files(files=[payload])
    return card_for(page, name)


def list_owner_media(page: Page, owner: str, media_id: str) -> None:
    page.get_by_role("button", name="List media").click()
    expect(page.locator("#owner-status")).to_have_text(
        f"1 media for default / {owner}."
    )
    item = page.locator(f'.media-item[data-media-id="{media_id}"]')
    expect(item.locator("img.thumb")).to_have_attribute("alt", f"Media {media_id[:8]}")


def delete_media(page: Page, owner: str, media_id: str) -> None:
    """Delete once against a server without the route, then for real."""
    status = page.locator("#owner-status")
    item = page.locator(f'.media-item[data-media-id="{media_id}"]')
    delete = item.get_by_role("button", name=f"Delete media {media_id}")

    page.route("**/image-pipeline/media/*", refuse_delete, times=1)
    delete.click()
    expected = "Not deleted (HTTP 405): this server does not allow deleting media."
    expect(status).to_contain_text(expected)
    expect(item.locator(".media-outcome")).to_contain_text("Method Not Allowed")
    expect(delete).to_be_enabled()

    with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
        delete.click()
    assert answer.value.status == 204
    expect(status).to_have_text(f"Deleted media {media_id} (HTTP 204).")
    expect(item).to_have_count(0)
    page.get_by_role("button", name="List media").click()
    expect(status).to_have_text(f"No completed media for default / {owner} yet.")


def refuse_delete(route: Route) -> None:
    assert route.request.method == "DELETE"
    route.fulfill(
        status=405, json={"error": "Method Not Allowed", "code": "method_not_allowed"}
    )


def drop(page: Page, files: dict[str, bytes]) -> None:
    """Drop files on the drop zone, as a person dragging them from a folder."""
    encoded = {name: base64.b64encode(data).decode() for name, data in files.items()}
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const [name, text] of Object.entries(files)) {
                const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            }
            return transfer;
        }""",
        encoded,
    )
    page.locator("#drop-zone").dispatch_event("drop", {"dataTransfer": transfer})


@contextmanager
def images_held(page: Page) -> Iterator[None]:
    """Requests for variant files wait until the block ends."""
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route(FILES, hold)
    try:
        yield
    finally:
        for route in held:
            route.continue_()
        page.unroute(FILES)


def test_avatars_dropped_on_a_phone_sized_screen(
    phone: Page, service: Service, photo: bytes, artifacts: Path
) -> None:
    choose_owner(phone, "avatar")
    drop(phone, {"selfie.jpg": photo, "small.jpg": small_photo()})
    cards = [card_for(phone, "selfie.jpg"), card_for(phone, "small.jpg")]
    for card in cards:
        wait_complete(card)
        media = job_of(service, card)["media"]
        assert_srcset_lists_variants(card, media)
        expect(card.locator(".frame")).to_have_class(re.compile(r"\bis-avatar\b"))

    scroll_width = phone.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"], "the page scrolls sideways on a phone"
    phone.get_by_role("button", name="List media").click()
    expect(phone.locator(".media-item")).to_have_count(2)
    phone.screenshot(path=artifacts / "demo-phone.png", full_page=True)


def small_photo() -> bytes:
    image = Image.radial_gradient("L").resize((400, 300)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()
