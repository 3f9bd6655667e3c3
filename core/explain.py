"""Show where an image model looks: ``python -m core.explain``;
kept for its documented name, the command is :mod:`cli.explain_image`."""
if __name__ == "__main__":
    import sys

    from cli.explain_image import main
    sys.exit(main())
