"""Train Video Swin (the main job): ``python -m video_swin.train``;
kept for its documented name, the command is :mod:`cli.train`."""
if __name__ == "__main__":
    import sys

    from cli.train import main_video
    sys.exit(main_video())
