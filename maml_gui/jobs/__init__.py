"""Work off the GUI thread: the thread registry, the job runner and the training worker."""
