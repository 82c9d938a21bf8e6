"""How it reaches the socket, on time: SSE frames (the only place bytes are written), rendering a
timeline into actions, the player that keeps time, the transport and the TCP connection."""
