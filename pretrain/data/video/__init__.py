"""Decoding and rendering: only the frames a clip needs, kept in the decoder's YUV, rendered to crops."""
