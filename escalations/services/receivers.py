"""Where a receiver's URL and token come from: the environment, never the database.

``BASTION_RECEIVER_<NAME>_URL`` or ``BASTION_RECEIVER_<NAME>_URL_FILE`` contains
the URL, ``BASTION_RECEIVER_<NAME>_TOKEN`` or ``..._TOKEN_FILE`` an optional
bearer token, where NAME is the receiver's name in capitals. Setting both a
variable and its ``_FILE`` twin is an error, as for every Bastion secret.
"""

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from bastion import env
from escalations.models import Receiver


class ReceiverNotConfigured(Exception):
    """A receiver whose URL is missing or whose settings cannot be read."""


@dataclass(frozen=True)
class ReceiverConfig:
    url: str
    token: str | None


def url_variable(receiver: Receiver) -> str:
    return f"{env.PREFIX}{receiver.env_prefix}_URL"


def receiver_config(receiver: Receiver) -> ReceiverConfig:
    """Read the receiver's URL and token; raise ReceiverNotConfigured if unusable."""
    try:
        url = env.read_secret(receiver.env_prefix + "_URL")
        token = env.read_secret(receiver.env_prefix + "_TOKEN")
    except ImproperlyConfigured as error:
        raise ReceiverNotConfigured(f"receiver {receiver.name}: {error}") from None
    if not url:
        raise ReceiverNotConfigured(
            f"receiver {receiver.name} has no URL configured: set "
            f"{url_variable(receiver)} or {url_variable(receiver)}_FILE in the "
            "environment of the Celery worker"
        )
    if not url.startswith(("http://", "https://")):
        raise ReceiverNotConfigured(
            f"{url_variable(receiver)} is not an http:// or https:// URL: fix it"
        )
    return ReceiverConfig(url=url, token=token or None)


def unconfigured(receivers: list[Receiver]) -> list[str]:
    """Return a problem line for each receiver that cannot be sent to."""
    problems = []
    for receiver in receivers:
        try:
            receiver_config(receiver)
        except ReceiverNotConfigured as error:
            problems.append(str(error))
    return problems
