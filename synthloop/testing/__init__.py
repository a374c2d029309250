"""Tools for testing pipelines without a GPU: a loopback OpenAI-compatible server with fault injection."""
