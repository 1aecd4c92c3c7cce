"""quantbench's own exceptions: ``UserError`` is the user's to fix (the CLI prints it as one line,
without a traceback); ``NotRepresentable`` says why a kernel cannot run a grid as it is."""


class UserError(Exception):
    """A mistake in the user's input (file, option, name); the message says how to fix it."""


class NotRepresentable(ValueError):
    """quantbench's grid cannot be expressed exactly in a kernel's layout (tinygemm, MatMulNBits, ...);
    the message says why."""


class Unsupported(Exception):
    """A method or format cannot run here (missing kernel, layer type, runtime); the row says why."""
