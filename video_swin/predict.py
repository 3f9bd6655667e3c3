"""Classify videos: ``python -m video_swin.predict``, kept for its documented name; the command is :mod:`cli.predict`."""
if __name__ == "__main__":
    import sys

    from cli.predict import main
    sys.exit(main())
