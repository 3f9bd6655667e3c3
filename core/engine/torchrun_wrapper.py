"""torchrun with preemption and exit codes: ``python -m core.engine.torchrun_wrapper``;
kept for its documented name, the command is :mod:`cli.torchrun`."""
if __name__ == "__main__":
    import sys

    from cli.torchrun import main
    sys.exit(main())
