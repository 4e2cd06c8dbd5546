"""The one error type for user mistakes.

A `UserError` is something the user can fix: a missing file, an unsupported op, a bad shape,
a value too wide. The command line prints its message as one line and exits with status 2.
Anything else is a bug in fpgacnn and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in what the user gave us; the message names the layer, tensor or field."""
