"""The demo page: ``python -m video_swin.demo --checkpoint RUN/best.pth [--port 7860]``; the command is :mod:`cli.demo`."""
if __name__ == "__main__":
    import sys

    from cli.demo import main
    sys.exit(main())
