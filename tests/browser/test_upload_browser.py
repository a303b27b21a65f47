"""Agency staff in a real headless Chromium, in Bahasa Indonesia: a 200-row workbook with 3
bad rows uploaded, previewed (exactly those three rows, by row and column), confirmed (197
made, the progress page reloading itself without script), uploaded again (nothing new);
another agency's staff cannot open it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from gateway.agencies import create_agency, issue_key
from gateway.queues import QueueNames
from tests.browser.conftest import screenshot, sign_in_as_staff, staff_of
from tests.console.test_uploads import (
    EXPECTED_ERRORS,
    api_requests,
    as_xlsx,
    two_hundred_rows,
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _upload(page, url: str, data: bytes) -> str:
    page.goto(f"{url}/console/requests")
    page.locator("#upload-medicine_delivery").click()
    page.wait_for_url(f"{url}/console/services/medicine_delivery/upload")
    expect(page.locator("h1")).to_contain_text("Permintaan lewat lembar kerja")
    page.set_input_files("#input-file", files=[{"name": "permintaan.xlsx", "mimeType": XLSX,
                                                "buffer": data}])
    page.get_by_role("button", name="Unggah dan periksa").click()
    page.wait_for_url(re.compile(rf"{re.escape(url)}/console/uploads/[0-9a-f-]+$"))
    # the preview is a job on the uploads queue, which workers take after every other
    expect(page.locator("#upload-status")).to_have_attribute("data-status", "previewed",
                                                             timeout=60_000)
    return page.url


def test_staff_upload_200_rows_with_3_bad_in_indonesian_once(gosend_app, new_page,
                                                             background_worker):
    app = gosend_app()
    url = app.server_url
    gateway = app.extensions["gateway"]
    sobo, _live = create_agency(gateway, "Puskesmas Sobo", ["medicine_delivery"], actor="test")
    test_key = issue_key(gateway, sobo.id, "test", actor="test")
    other, _key = create_agency(gateway, "Puskesmas Lain", ["medicine_delivery"], actor="test")
    # Only the uploads queue is worked: the test is about the upload, not the 197 deliveries
    # it makes (a worker taking them too would make each later preview wait its turn behind
    # their reports and notices, minutes on a busy machine).
    background_worker(app, queues=[QueueNames.UPLOADS])
    data = as_xlsx(two_hundred_rows("RX-BRW"))

    page = new_page(locale="id-ID")
    sign_in_as_staff(page, url, staff_of(app, sobo.id, "petugas-unggah"))
    upload_url = _upload(page, url, data)
    cells = page.locator("#row-errors tbody tr")
    found = {(int(cells.nth(i).get_attribute("data-row")), cells.nth(i).get_attribute(
        "data-column")) for i in range(cells.count())}
    assert found == EXPECTED_ERRORS
    expect(page.locator("#preview-summary")).to_contain_text("197 baris dapat dibuat")
    assert api_requests(app, test_key) == []
    screenshot(page, "console-upload-preview-id")
    page.get_by_role("button", name="Buat 197 permintaan").click()
    expect(page.locator("#upload-status")).to_have_attribute("data-status", "done",
                                                             timeout=120_000)
    expect(page.locator("#done-summary")).to_contain_text("Dibuat: 197")
    assert len(api_requests(app, test_key)) == 197

    # The same file again: each row's request exists already
    _upload(page, url, data)
    page.get_by_role("button", name="Buat 197 permintaan").click()
    expect(page.locator("#upload-status")).to_have_attribute("data-status", "done",
                                                             timeout=120_000)
    expect(page.locator("#done-summary")).to_contain_text("Sudah dibuat sebelumnya: 197")
    assert len(api_requests(app, test_key)) == 197

    stranger = new_page(locale="id-ID")
    sign_in_as_staff(stranger, url, staff_of(app, other.id, "petugas-lain"))
    answer = stranger.goto(upload_url)
    assert answer.status == 404
    stranger.goto(f"{url}/console/requests")
    expect(stranger.locator("body")).not_to_contain_text("RX-BRW")
