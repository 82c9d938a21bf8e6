"""What will happen: a scenario and a request's overrides compiled into one timeline of steps, with
pacing and faults placed (and cached, since the same inputs always compile the same timeline)."""
