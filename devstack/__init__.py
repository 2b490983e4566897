"""Local stand-ins and real servers for the demo, the tests and the benchmarks.

Nothing in the product imports this package.
"""
