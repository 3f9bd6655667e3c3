"""Training curves of run folders: ``python -m core.tools.plot``;
kept for its documented name, the command is :mod:`cli.plot`."""
if __name__ == "__main__":
    import sys

    from cli.plot import main
    sys.exit(main())
