"""One module per ``sam3-ros`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``.

Errors follow one convention, applied by ``sam3_ros.cli.main``: a subcommand raises ``UsageError`` when its
command line cannot work (a malformed or out-of-range value, a device this machine lacks: exit 2, as argparse's
own errors) and ``CommandFailed`` when the work itself fails (a file that cannot be read, a check that does not
pass: exit 1). Either way the message goes to stderr as ``sam3-ros <command>: <message>``.
"""


class UsageError(Exception):
    """The command line asks for something that cannot work; exit status 2."""


class CommandFailed(Exception):
    """The command ran and failed; exit status 1."""
