"""`restate-stream ui`: a local web dashboard for a bindings file.

Every number on it comes from the code behind the command line (no second implementation):
`binding_statuses` (control/status.py) for states, lag, invocations and dead-letter counts;
`load_listing` and `run_redrive` (dlq) for the dead letters and their redrive; `set_paused` and
`apply_bindings` for pause/resume, as `restate-stream pause|resume` do; `topics.tail` for the
topic view. Those calls sit behind one `Source` (sources.py), so the pages are tested with
fake data. An in-process sampler (sampler.py) reads the statuses every few seconds and keeps
the last minutes of them for the overview's charts (server-rendered SVG, charts.py).

Pages are server-rendered (Starlette + Jinja2, templates in this package); a few lines of
inline JavaScript refresh the live fragments. Actions are POST forms guarded against cross-site
requests (guard.py): a per-process token in every form, and the Origin/Referer must be the
dashboard itself. It binds 127.0.0.1 by default; off loopback it needs allowed host names
and an access token (access.py), which every request then presents.
"""

from restate_stream.ui.app import create_app
from restate_stream.ui.sampler import Sampler
from restate_stream.ui.sources import LiveSource, PauseOutcome, Source

__all__ = ["LiveSource", "PauseOutcome", "Sampler", "Source", "create_app"]
