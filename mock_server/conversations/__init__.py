"""What the server remembers of conversations: where each is in a sequence of replies, and the
Responses API's stored responses."""
