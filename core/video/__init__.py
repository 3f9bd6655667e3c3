"""Video data every method shares: the clip reader (decord), transforms, the embedded synthetic sets, the
pytorchvideo backend, the video data section and its config pieces (``fields``), data sets from a recipe and the
video classification task."""
