"""Features of images: ``python -m core.extract_features``;
kept for its documented name, the command is :mod:`cli.extract_image`."""
if __name__ == "__main__":
    import sys

    from cli.extract_image import main
    sys.exit(main())
