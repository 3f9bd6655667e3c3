"""Classify images: ``python -m core.predict``;
kept for its documented name, the command is :mod:`cli.predict_image`."""
if __name__ == "__main__":
    import sys

    from cli.predict_image import main
    sys.exit(main())
