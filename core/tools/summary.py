"""FLOPs and parameters of registered models: ``python -m core.tools.summary``;
kept for its documented name, the command is :mod:`cli.summary`."""
if __name__ == "__main__":
    import sys

    from cli.summary import main
    sys.exit(main())
