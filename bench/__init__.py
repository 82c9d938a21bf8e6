"""Benchmarks: each figure measured for mock-llm-sse and for a raw ASGI baseline in the same run."""
