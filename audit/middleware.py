"""Remember the current request's client address for audit events that lack one.

Signal handlers, such as the one recording admin changes, see a model
instance but not the request that changed it.
"""

from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

from audit.services import client_address

current_address: ContextVar[str | None] = ContextVar("current_address", default=None)


class RequestAddressMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_address.set(client_address(request))
        try:
            return self.get_response(request)
        finally:
            current_address.reset(token)
