"""Re-encode videos for training: ``python -m video_swin.prepare``;
kept for its documented name, the command is :mod:`cli.prepare`."""
if __name__ == "__main__":
    import sys

    from cli.prepare import main
    sys.exit(main())
