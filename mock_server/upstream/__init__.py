"""Real traffic in: the proxy to an upstream, the recorder, and cassettes imported as recordings."""
