"""The approval page and the signed links that notifications carry."""

import time

import pytest
from django.urls import reverse
from django.utils import timezone

from mitigations.choices import AttemptStatus, RunStatus
from mitigations.models import ActionRun, Decision
from mitigations.services import approvals, chain
from tests.approvals.factories import firing_incident, waiting_runs
from watchers.models import Incident
from watchers.services.judging import fingerprint

pytestmark = pytest.mark.django_db


def approval_for(labels=None, parameters=None, **watcher):
    incident = firing_incident(
        (
            "test_approval_wipe",
            {"parameters": parameters or {"url": "http://127.0.0.1:9"}},
        ),
        labels=labels,
        **watcher,
    )
    (run,) = waiting_runs(incident)
    return approvals.request_approval(run.pk)


def page_url(approval) -> str:
    return reverse("mitigations:approval-detail", args=[approval.pk])


@pytest.mark.prometheus
def test_page_shows_incident_step_and_current_value(
    client, viewer, settings, prometheus, exporter, settle
):
    exporter.set(7.5, series="approval-page")
    (sample,) = settle(
        'bastion_test_value{series="approval-page"}', lambda result: len(result) == 1
    )
    settings.PROMETHEUS_URL = prometheus.url
    approval = approval_for(
        labels={"service": "sandra-api"},
        parameters={"url": "http://127.0.0.1:9", "service": "billing"},
        query='bastion_test_value{series="approval-page"}',
        threshold=5,
    )
    Incident.objects.filter(pk=approval.run.incident_id).update(
        fingerprint=fingerprint(sample["metric"])
    )
    client.force_login(viewer)

    text = client.get(page_url(approval)).content.decode()

    assert approval.run.incident.watcher.name in text
    assert "sandra-api" in text
    assert "test_approval_wipe" in text
    assert "destructive" in text
    assert "&quot;service&quot;: &quot;billing&quot;" in text
    assert '<span class="value">7.5</span>' in text
    assert "still firing" in text


@pytest.mark.prometheus
def test_page_shows_when_the_series_recovered(
    client, viewer, settings, prometheus, exporter, settle
):
    exporter.set(1, series="approval-recovered")
    (sample,) = settle(
        'bastion_test_value{series="approval-recovered"}',
        lambda result: len(result) == 1 and result[0]["value"][1] == "1",
    )
    settings.PROMETHEUS_URL = prometheus.url
    approval = approval_for(
        query='bastion_test_value{series="approval-recovered"}', threshold=5
    )
    Incident.objects.filter(pk=approval.run.incident_id).update(
        fingerprint=fingerprint(sample["metric"])
    )
    client.force_login(viewer)

    text = client.get(page_url(approval)).content.decode()

    assert "no longer firing" in text
    assert "the value recovered to 1" in text


def test_page_shows_failed_query_as_unknown(client, viewer):
    approval = approval_for()
    client.force_login(viewer)

    text = client.get(page_url(approval)).content.decode()

    assert '<span class="value">unknown</span>' in text
    assert "cannot reach Prometheus" in text


def test_page_escapes_labels_and_parameters(client, viewer):
    approval = approval_for(
        labels={"path": "<script>alert(1)</script>", "team": "ops & <b>sre</b>"},
        parameters={"url": "http://127.0.0.1:9/?a=<i>&b=1"},
    )
    client.force_login(viewer)

    text = client.get(page_url(approval)).content.decode()

    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "ops &amp; &lt;b&gt;sre&lt;/b&gt;" in text
    assert "<i>" not in text
    assert "a=&lt;i&gt;&amp;b=1" in text


def test_page_shows_decide_buttons_to_an_approver(client, approver):
    approval = approval_for()
    client.force_login(approver)

    text = client.get(page_url(approval)).content.decode()

    assert 'value="approve"' in text
    assert 'value="reject"' in text
    assert "csrfmiddlewaretoken" in text


def test_page_shows_no_buttons_without_decide_permission(client, viewer):
    approval = approval_for()
    client.force_login(viewer)

    text = client.get(page_url(approval)).content.decode()

    assert 'value="approve"' not in text
    assert "ask an admin" in text


def test_page_shows_the_decision_once_taken(client, viewer, approver):
    approval = approval_for()
    approvals.decide(approval.pk, approver, approve=False, comment="<b>later</b>")
    client.force_login(viewer)

    text = client.get(page_url(approval)).content.decode()

    incident = approval.run.incident_id
    assert f"<h1>Rejected: test_approval_wipe for incident #{incident}</h1>" in text
    assert f"approval {approval.pk} was rejected by approver" in text
    assert "already" not in text
    assert "&lt;b&gt;later&lt;/b&gt;" in text


def test_page_withdrawn_names_the_reason(client, viewer):
    approval = approval_for()
    attempt = approval.run.attempt
    chain.end_attempt(attempt, AttemptStatus.FAILED, "step 1 failed", timezone.now())
    client.force_login(viewer)

    text = client.get(page_url(approval)).content.decode()

    assert "<h1>Withdrawn: test_approval_wipe" in text
    assert "before anyone decided (not run: the attempt failed)" in text
    assert "resolved" not in text


def test_page_needs_view_permission(client, outsider):
    approval = approval_for()
    client.force_login(outsider)

    response = client.get(page_url(approval))

    assert response.status_code == 403


def test_page_sends_anonymous_visitor_to_login(client):
    approval = approval_for()

    response = client.get(page_url(approval))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def link_path(approval) -> str:
    url = approvals.approval_url(approval)
    return url.removeprefix("http://testserver")


def test_approval_url_is_absolute_with_base_url(settings):
    settings.BASE_URL = "https://bastion.example.org/"
    approval = approval_for()

    url = approvals.approval_url(approval)

    assert url.startswith("https://bastion.example.org/approvals/link/")


def test_link_sends_anonymous_visitor_to_login_and_back(client, settings):
    settings.BASE_URL = "http://testserver"
    approval = approval_for()

    response = client.get(link_path(approval))

    assert response.status_code == 302
    assert response["Location"] == (
        f"{reverse('login')}?next=/approvals/{approval.pk}/"
    )
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING


def test_link_opens_the_approval_page_when_signed_in(client, settings, approver):
    settings.BASE_URL = "http://testserver"
    approval = approval_for()
    client.force_login(approver)

    response = client.get(link_path(approval), follow=True)

    assert response.redirect_chain == [(page_url(approval), 302)]
    assert response.status_code == 200
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING
    assert ActionRun.objects.get(pk=approval.run_id).status == (
        RunStatus.WAITING_APPROVAL
    )


def test_tampered_link_is_400(client, settings):
    settings.BASE_URL = "http://testserver"
    approval = approval_for()
    path = link_path(approval)
    tampered = path.replace("/link/", "/link/x", 1)

    response = client.get(tampered)

    assert response.status_code == 400
    assert "This approval link is invalid" in response.content.decode()


def test_link_for_another_approval_id_is_400(client):
    forged = reverse("mitigations:approval-link", args=["eyJhcHByb3ZhbCI6MX0:bad"])

    response = client.get(forged)

    assert response.status_code == 400


def test_expired_link_is_410(client, settings):
    settings.BASE_URL = "http://testserver"
    settings.APPROVAL_TIMEOUT_SECONDS = 1
    approval = approval_for()
    path = link_path(approval)
    time.sleep(2.1)

    response = client.get(path)

    assert response.status_code == 410
    assert "This approval link has expired" in response.content.decode()


def test_pending_list_shows_only_waiting_steps(client, viewer):
    waiting = approval_for()
    moved_on = approval_for()
    ActionRun.objects.filter(pk=moved_on.run_id).update(status=RunStatus.SKIPPED)
    client.force_login(viewer)

    response = client.get(reverse("mitigations:approval-list"))

    listed = [approval.pk for approval in response.context["approvals"]]
    assert listed == [waiting.pk]
