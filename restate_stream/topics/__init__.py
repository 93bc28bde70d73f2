"""Records on topics by hand: `publish` and `tail`."""
