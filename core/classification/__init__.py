"""Classification, the first task on the engine: image data, the classification config and task."""
