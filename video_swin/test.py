"""Multi-view test of a Video Swin run: ``python -m video_swin.test``;
kept for its documented name, the command is :mod:`cli.test`."""
if __name__ == "__main__":
    import sys

    from cli.test import main
    sys.exit(main())
