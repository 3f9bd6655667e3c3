"""Features of whole videos: ``python -m video_swin.extract_features``;
kept for its documented name, the command is :mod:`cli.extract`."""
if __name__ == "__main__":
    import sys

    from cli.extract import main
    sys.exit(main())
