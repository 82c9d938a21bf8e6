"""The edge: the app and its model routes, the shared request path, the control API, errors, access
rules and connection limits, and serving it all on uvicorn (`MockServer`, the foreground runner)."""
