"""What a user writes: the scenario model and the problems it reports, the step vocabulary, faults,
match patterns, loading files with their line numbers, and the catalog that picks a scenario for
each request."""
