"""Paging shared by the list pages."""

from typing import TYPE_CHECKING, Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest
from django.views.generic.list import MultipleObjectMixin

# Only the type stubs define _SupportsPagination and make the mixin generic.
if TYPE_CHECKING:
    from django.core.paginator import _SupportsPagination

    _ListMixin = MultipleObjectMixin[Any]
else:
    _ListMixin = MultipleObjectMixin


class NearestPageMixin(_ListMixin):
    """Show the nearest valid page for a page number past the end or not a number.

    A link to a page that emptied since it was shared, or a mistyped number,
    then still shows rows rather than a 404.
    """

    request: HttpRequest

    def paginate_queryset(
        self, queryset: "_SupportsPagination[Any]", page_size: int
    ) -> "tuple[Paginator[Any], Page[Any], _SupportsPagination[Any], bool]":
        paginator = self.get_paginator(
            queryset,
            page_size,
            orphans=self.get_paginate_orphans(),
            allow_empty_first_page=self.get_allow_empty(),
        )
        page = paginator.get_page(self.request.GET.get(self.page_kwarg))
        return paginator, page, page.object_list, page.has_other_pages()
