"""Show where a video model looks: ``python -m video_swin.explain``, kept for its documented name; the command is
:mod:`cli.explain`."""
if __name__ == "__main__":
    import sys

    from cli.explain import main
    sys.exit(main())
