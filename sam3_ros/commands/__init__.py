"""One module per ``sam3-ros`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
