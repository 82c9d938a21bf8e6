"""What `MockApp` leaves in each request's ASGI scope, for the routes on both of its sides."""

STATE_SCOPE_KEY = "mock_llm_sse.state"
"""The app's state (`MockState`), which `state_of(request)` reads."""
