"""The incident page in Chromium: it follows its incident without a reload."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import PHONE, UPDATE_TIMEOUT_MS, expect_status, sign_in
from tests.browser.test_dashboard import add_pending_approval, make_incident

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def reject(approval_id: int, user) -> None:
    from mitigations.services import approvals

    approvals.decide(approval_id, user, approve=False, comment="not during the sale")


def test_decision_elsewhere_shows_without_reload(browser, server, viewer, orm):
    incident = orm(make_incident, "orders-backlog")
    approval = orm(add_pending_approval, incident, "disable_feature_flags")
    page = sign_in(browser, server, viewer, path=f"/incidents/{incident.pk}/")
    expect_status(page, "live")
    page.evaluate("window.loadedOnce = true")
    summary = page.locator("#incident-summary")
    expect(summary.locator(".pending-approval")).to_have_count(1)

    orm(reject, approval.pk, viewer)

    expect(summary.locator(".pending-approval")).to_have_count(
        0, timeout=UPDATE_TIMEOUT_MS
    )
    expect(page.locator("#incident-timeline")).to_contain_text(
        "disable_feature_flags: rejected", timeout=UPDATE_TIMEOUT_MS
    )
    expect(page.locator("#incident-timeline")).to_contain_text("not during the sale")
    assert page.evaluate("window.loadedOnce") is True


def test_reject_button_on_incident_page(browser, server, viewer, orm):
    incident = orm(make_incident, "payment-errors")
    orm(add_pending_approval, incident, "rollback_deployment")
    page = sign_in(browser, server, viewer, path=f"/incidents/{incident.pk}/")
    expect_status(page, "live")

    # Reject opens a prompt for an optional reason. Accepting it empty still rejects.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#incident-summary").get_by_role("button", name="Reject").click()

    expect(page.locator("#decide-result")).to_have_text(
        "You rejected rollback_deployment.", timeout=UPDATE_TIMEOUT_MS
    )
    expect(page.locator("#incident-timeline")).to_contain_text(
        "rollback_deployment: rejected", timeout=UPDATE_TIMEOUT_MS
    )


def test_incident_page_fits_a_phone(browser, server, viewer, orm):
    incident = orm(make_incident, "a-watcher-with-a-rather-long-name-for-phones")
    orm(add_pending_approval, incident, "restart_high_memory_pods")
    page = sign_in(
        browser, server, viewer, path=f"/incidents/{incident.pk}/", viewport=PHONE
    )
    expect_status(page, "live")

    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )

    assert overflow <= 0
    expect(page.get_by_role("button", name="Approve")).to_be_visible()
