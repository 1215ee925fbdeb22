"""The one exception type for bad user input.

Its message is a single line naming the file, the field or line, and what was expected;
the CLI prints it without a traceback.
"""


class InputError(ValueError):
    """Bad user input; the message is one line: file, field or line, what was expected."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
