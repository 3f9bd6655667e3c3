"""Linear probe of a pretrained backbone: ``python -m moby.linear``;
kept for its documented name, the command is :mod:`cli.linear`."""
if __name__ == "__main__":
    import sys

    from cli.linear import main
    sys.exit(main())
