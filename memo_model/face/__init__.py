"""Face front end: picture -> largest face (SCRFD box + keypoints) -> ArcFace embedding ->
the framed reference MEMO animates, and the framing that pastes frames back."""
from .analyzer import (
                       DETECTOR_FILE,
                       EMBEDDING_DIM,
                       RECOGNIZER_FILE,
                       Face,
                       FaceAnalyzer,
                       NoFaceError,
                       embedding_tensor,
                       find_face_models,
)
from .framing import Framing, frame_portrait

__all__ = ["Face", "FaceAnalyzer", "NoFaceError", "Framing", "frame_portrait", "embedding_tensor",
           "find_face_models", "DETECTOR_FILE", "RECOGNIZER_FILE", "EMBEDDING_DIM"]
