"""PromQL checks made before a watcher is saved."""

import pytest

from watchers.services.promql import MAX_QUERY_LENGTH, PromQLError, check_instant_query


def test_vector_and_scalar_queries_pass():
    assert check_instant_query('rate(http_requests_total{job="api"}[5m])') == "vector"
    assert check_instant_query("1 + 2") == "scalar"


def test_query_over_the_length_limit_is_rejected():
    # 6,000 selectors joined by `or` crash promql-parser 0.12 outright.
    query = " or ".join(["up"] * 6000)

    with pytest.raises(PromQLError) as error:
        check_instant_query(query)

    assert f"{len(query):,} characters long" in str(error.value)
    assert f"limit of {MAX_QUERY_LENGTH:,}" in str(error.value)


def test_deep_nesting_within_the_limit_is_rejected():
    query = "+".join(["a"] * 1900)
    assert len(query) <= MAX_QUERY_LENGTH

    with pytest.raises(PromQLError) as error:
        check_instant_query(query)

    assert "nests too deeply" in str(error.value)
