"""Output: the streaming mp4 writer (`video`) and the resumable clip-by-clip render (`render`)."""
