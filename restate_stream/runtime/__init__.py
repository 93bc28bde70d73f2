"""The runtime: serving the app, bound handlers, events, formats, the durable publisher."""
