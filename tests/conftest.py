"""Engine fixtures come from restate-stream's own pytest plugin (restate_stream.testing)."""
