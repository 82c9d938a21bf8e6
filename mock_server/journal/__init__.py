"""What happened: one record per request (secrets masked), from facts that travel with each stream,
and the verdict on what the clients did about it."""
