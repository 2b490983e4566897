"""PromQL checks made before a query is saved, with the promql-parser package."""

import promql_parser

# promql-parser 0.12 crashes the whole process (a segmentation fault, not an
# exception) on expressions nested a few thousand levels deep, such as 5,000
# selectors joined by `or` (about 30,000 characters). Longer queries are
# rejected before they reach it. Real watcher queries are far shorter.
MAX_QUERY_LENGTH = 4000


class PromQLError(ValueError):
    pass


def result_type(expression: promql_parser.Expr) -> str:
    """Return "vector", "scalar", "matrix" or "string" for a parsed expression."""
    if isinstance(expression, promql_parser.NumberLiteral):
        return "scalar"
    if isinstance(expression, promql_parser.StringLiteral):
        return "string"
    if isinstance(
        expression, promql_parser.VectorSelector | promql_parser.AggregateExpr
    ):
        return "vector"
    if isinstance(
        expression, promql_parser.MatrixSelector | promql_parser.SubqueryExpr
    ):
        return "matrix"
    if isinstance(expression, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return result_type(expression.expr)
    if isinstance(expression, promql_parser.Call):
        return str(expression.func.return_type).rsplit(".", 1)[-1].lower()
    if isinstance(expression, promql_parser.BinaryExpr):
        sides = {result_type(expression.lhs), result_type(expression.rhs)}
        return "scalar" if sides == {"scalar"} else "vector"
    return "vector"


def check_instant_query(query: str) -> str:
    """Parse ``query`` and return its result type, "vector" or "scalar"."""
    if not query or not query.strip():
        raise PromQLError("the query is empty")
    if len(query) > MAX_QUERY_LENGTH:
        raise PromQLError(
            f"the query is {len(query):,} characters long, over the limit of "
            f"{MAX_QUERY_LENGTH:,}: split it into several watchers, or move "
            "its parts into Prometheus recording rules"
        )
    try:
        expression = promql_parser.parse(query)
    except ValueError as error:
        raise PromQLError(f"the query does not parse: {error}") from None
    try:
        kind = result_type(expression)
    except RecursionError:
        raise PromQLError(
            "the query nests too deeply to check: move its parts into "
            "Prometheus recording rules"
        ) from None
    if kind not in ("vector", "scalar"):
        raise PromQLError(
            f"the query returns a {kind}, but a watcher needs an instant vector "
            "or a scalar: wrap a range selector in a function such as rate()"
        )
    return kind
